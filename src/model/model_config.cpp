#include "moequant/model/model_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>

#include "families/families.h"
#include "moequant/common/error.h"
#include "moequant/common/limited_json.h"
#include "moequant/common/regular_file.h"
#include "moequant/common/strings.h"
#include "moequant/model/config_values.h"

namespace moequant {

namespace {

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The non-negative integer at s[pos..] up to the next '.', or -1.
int index_at(const std::string& s, size_t pos, size_t* end) {
  size_t e = pos;
  while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
  if (e == pos || e - pos > 9 || (e < s.size() && s[e] != '.')) return -1;
  *end = e;
  return std::stoi(s.substr(pos, e - pos));
}

}  // namespace

bool ModelConfig::is_moe_layer(int layer) const {
  return std::binary_search(moe_layers.begin(), moe_layers.end(), layer);
}

std::string ModelConfig::text_root() const {
  return family->text_root();
}

std::string ModelConfig::layer_prefix(int layer) const {
  return family->layer_prefix(layer);
}

std::string ModelConfig::dense_mlp(int layer) const {
  return family->dense_mlp(layer);
}

std::string ModelConfig::moe_block(int layer) const {
  return family->moe_block(layer);
}

std::string ModelConfig::router_module(int layer) const {
  return family->router(layer);
}

std::string ModelConfig::experts_prefix(int layer) const {
  return moe_block(layer) + ".experts";
}

std::string ModelConfig::proj_name(ExpertProj p) const {
  return family->expert_proj(p);
}

std::string ModelConfig::expert_module_name(int layer, int expert, ExpertProj p) const {
  return experts_prefix(layer) + "." + std::to_string(expert) + "." + proj_name(p);
}

std::string ModelConfig::expert_weight_name(int layer, int expert, ExpertProj p) const {
  return expert_module_name(layer, expert, p) + ".weight";
}

std::string ModelConfig::fused_gate_up_name(int layer) const {
  return experts_prefix(layer) + ".gate_up_proj";
}

std::string ModelConfig::fused_down_name(int layer) const {
  return experts_prefix(layer) + ".down_proj";
}

std::string ModelConfig::experts_in_block() const {
  return experts_prefix(0).substr(layer_prefix(0).size());
}

TensorPlace ModelConfig::place_of(const std::string& name) const {
  const std::string layers = text_root() + "layers.";
  if (starts_with(name, layers)) {
    size_t end = 0;
    const int layer = index_at(name, layers.size(), &end);
    if (layer >= 0) return {TensorPlace::kLayer, layer};
  }
  if (starts_with(name, text_root() + "embed_tokens.")) return {TensorPlace::kBeforeLayers, -1};
  return {TensorPlace::kAfterLayers, -1};
}

bool ModelConfig::is_routed_expert_tensor(const std::string& name, int* layer_out,
                                          int* expert_out) const {
  const TensorPlace place = place_of(name);
  if (place.kind != TensorPlace::kLayer || place.layer >= num_layers) return false;
  const std::string prefix = experts_prefix(place.layer) + ".";
  if (!starts_with(name, prefix)) return false;
  size_t end = 0;
  const int expert = index_at(name, prefix.size(), &end);
  bool fused = false;
  for (const std::string& f : {fused_gate_up_name(place.layer), fused_down_name(place.layer)})
    fused = fused || name == f || name == f + "_blocks" || name == f + "_scales";
  if (expert < 0 && !fused) return false;
  if (layer_out) *layer_out = place.layer;
  if (expert_out) *expert_out = fused ? -1 : expert;
  return true;
}

bool ModelConfig::is_embedding(const std::string& name) {
  // The model's ("model.embed_tokens.weight", "model.language_model.embed_tokens.weight"), or an
  // MTP layer's own ("model.layers.61.embed_tokens.weight", "mtp.embed_tokens.weight").
  return name == "embed_tokens.weight" || ends_with(name, ".embed_tokens.weight");
}

ModelConfig parse_model_config(nlohmann::json raw, const std::string& dir, const std::string& file,
                               ConfigOf of) {
  ModelConfig c;
  c.dir = dir;
  c.raw = std::move(raw);
  MQ_CHECK(c.raw.is_object(), file, ": expected a JSON object");
  MQ_CHECK(c.raw.contains("model_type") && c.raw["model_type"].is_string(), file,
           ": missing 'model_type'");
  c.model_type = c.raw["model_type"].get<std::string>();
  c.family = &family_for_model_type(c.model_type, file);
  c.text = c.family->text_config(c.raw, file);
  const nlohmann::json& t = c.text;
  c.num_layers = static_cast<int>(config_int(t, {"num_hidden_layers"}, file, 1, kMaxLayers));
  c.extra_layers = c.family->extra_layers(t, file);
  c.num_experts = static_cast<int>(c.family->num_experts(t, file));
  c.hidden = config_int(t, {"hidden_size"}, file, 1, kMaxWidth);
  c.intermediate = c.family->expert_intermediate(t, file);
  c.moe_layers = c.family->moe_layers(t, c.num_layers, file);
  if (of == ConfigOf::kSource) c.source = source_quantization(c.raw, file);
  MQ_CHECK(!c.moe_layers.empty(), file,
           ": no layer has routed experts (mlp_only_layers / decoder_sparse_step leave none)");
  return c;
}

ModelConfig read_model_config(const std::string& dir, ConfigOf of) {
  MQ_CHECK(is_dir(dir), "model folder '", dir, "' does not exist or is not a folder");
  const std::string file = dir + "/config.json";
  MQ_CHECK(path_exists(file), "model folder '", dir, "' has no config.json");
  return parse_model_config(read_json_file(file, kMaxConfigFileBytes), dir, file, of);
}

}  // namespace moequant
