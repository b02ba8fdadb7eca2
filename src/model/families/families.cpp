#include "families.h"

#include <algorithm>

#include "moequant/common/error.h"
#include "moequant/common/strings.h"

namespace moequant {

namespace {
const std::vector<const ModelFamily*>& all_families() {
  static const std::vector<const ModelFamily*> all = {&qwen3_moe_family(), &qwen2_moe_family(),
                                                      &mixtral_family()};
  return all;
}
}  // namespace

std::vector<int> ModelFamily::moe_layers(const nlohmann::json&, int num_layers) const {
  std::vector<int> all(num_layers);
  for (int l = 0; l < num_layers; ++l) all[l] = l;
  return all;
}

std::string ModelFamily::shared_expert(int) const {
  return "";
}
std::string ModelFamily::shared_expert_gate(int) const {
  return "";
}

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const ModelFamily* f : all_families())
    for (const std::string& t : f->model_types()) out.push_back(t);
  std::sort(out.begin(), out.end());
  return out;
}

const ModelFamily& family_for_model_type(const std::string& model_type, const std::string& file) {
  for (const ModelFamily* f : all_families())
    for (const std::string& t : f->model_types())
      if (t == model_type) return *f;
  MQ_THROW(file, ": unsupported model_type '", model_type,
           "' (supported: ", join(supported_model_types()), ")");
}

std::string layer_prefix(int layer) {
  return "model.layers." + std::to_string(layer) + ".";
}

std::string swiglu_proj_name(ExpertProj p) {
  return p == ExpertProj::kGate ? "gate_proj" : p == ExpertProj::kUp ? "up_proj" : "down_proj";
}

int64_t config_int(const nlohmann::json& c, const std::vector<const char*>& keys,
                   const std::string& file) {
  for (const char* k : keys) {
    if (!c.contains(k) || c[k].is_null()) continue;
    MQ_CHECK(c[k].is_number_integer() && c[k].get<int64_t>() > 0, file, ": '", k,
             "' must be a positive integer");
    return c[k].get<int64_t>();
  }
  std::vector<std::string> names;
  for (const char* k : keys) names.push_back(std::string("'") + k + "'");
  MQ_THROW(file, ": missing ", join(names, " or "));
}

bool config_bool(const nlohmann::json& c, const char* key, bool fallback) {
  if (!c.contains(key) || c[key].is_null()) return fallback;
  return c[key].is_boolean() ? c[key].get<bool>() : fallback;
}

std::vector<int> sparse_step_layers(const nlohmann::json& c, int num_layers) {
  std::vector<int> dense_only;
  if (c.contains("mlp_only_layers") && c["mlp_only_layers"].is_array())
    for (const auto& v : c["mlp_only_layers"])
      if (v.is_number_integer()) dense_only.push_back(v.get<int>());
  int step = 1;
  if (c.contains("decoder_sparse_step") && c["decoder_sparse_step"].is_number_integer())
    step = std::max(1, c["decoder_sparse_step"].get<int>());
  std::vector<int> out;
  for (int l = 0; l < num_layers; ++l) {
    const bool dense = std::find(dense_only.begin(), dense_only.end(), l) != dense_only.end();
    if (!dense && (l + 1) % step == 0) out.push_back(l);
  }
  return out;
}

}  // namespace moequant
