#include "moequant/hf/hf_config.h"

#include <sys/stat.h>
#include <algorithm>
#include <fstream>

#include "moequant/core/error.h"

namespace moequant {

namespace {

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

int64_t require_int(const nlohmann::json& j, const std::vector<const char*>& keys,
                    const std::string& file) {
  for (const char* k : keys) {
    if (!j.contains(k) || j[k].is_null()) continue;
    MQ_CHECK(j[k].is_number_integer() && j[k].get<int64_t>() > 0, file, ": '", k,
             "' must be a positive integer");
    return j[k].get<int64_t>();
  }
  std::string names;
  for (const char* k : keys) names += std::string(names.empty() ? "" : " or ") + "'" + k + "'";
  MQ_THROW(file, ": missing ", names);
}

}  // namespace

bool HfMoeConfig::is_moe_layer(int layer) const {
  return std::binary_search(moe_layers.begin(), moe_layers.end(), layer);
}

std::string HfMoeConfig::experts_prefix(int layer) const {
  const std::string base = "model.layers." + std::to_string(layer);
  return naming == MoeNaming::kQwen3 ? base + ".mlp.experts" : base + ".block_sparse_moe.experts";
}

std::string HfMoeConfig::proj_name(ExpertProj p) const {
  if (naming == MoeNaming::kMixtral)
    return p == ExpertProj::kGate ? "w1" : p == ExpertProj::kUp ? "w3" : "w2";
  return p == ExpertProj::kGate ? "gate_proj" : p == ExpertProj::kUp ? "up_proj" : "down_proj";
}

std::string HfMoeConfig::expert_weight_name(int layer, int expert, ExpertProj p) const {
  return expert_module_name(layer, expert, p) + ".weight";
}

std::string HfMoeConfig::expert_module_name(int layer, int expert, ExpertProj p) const {
  return experts_prefix(layer) + "." + std::to_string(expert) + "." + proj_name(p);
}

std::string HfMoeConfig::fused_gate_up_name(int layer) const {
  return experts_prefix(layer) + ".gate_up_proj";
}
std::string HfMoeConfig::fused_down_name(int layer) const {
  return experts_prefix(layer) + ".down_proj";
}

std::string HfMoeConfig::experts_in_block() const {
  return naming == MoeNaming::kQwen3 ? "mlp.experts" : "block_sparse_moe.experts";
}

std::vector<std::string> HfMoeConfig::unquantized_module_patterns() const {
  if (naming == MoeNaming::kQwen3)
    return {"lm_head",
            "model.embed_tokens",
            "model.layers.*.self_attn*",
            "model.layers.*.mlp.gate",
            "model.layers.*.mlp.shared_expert*",
            "model.layers.*.mlp.shared_expert_gate"};
  return {"lm_head", "model.embed_tokens", "model.layers.*.self_attn*",
          "model.layers.*.block_sparse_moe.gate"};
}

HfMoeConfig read_hf_config(const std::string& dir) {
  MQ_CHECK(is_dir(dir), "model folder '", dir, "' does not exist or is not a folder");
  const std::string file = dir + "/config.json";
  std::ifstream in(file);
  MQ_CHECK(in.good(), "model folder '", dir, "' has no config.json");
  HfMoeConfig c;
  c.dir = dir;
  try {
    c.raw = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    MQ_THROW(file, ": malformed JSON: ", e.what());
  }
  MQ_CHECK(c.raw.is_object(), file, ": expected a JSON object");
  MQ_CHECK(c.raw.contains("model_type") && c.raw["model_type"].is_string(), file,
           ": missing 'model_type'");
  c.model_type = c.raw["model_type"].get<std::string>();
  if (c.model_type == "qwen3_moe" || c.model_type == "qwen2_moe") {
    c.naming = MoeNaming::kQwen3;
  } else if (c.model_type == "mixtral") {
    c.naming = MoeNaming::kMixtral;
  } else {
    MQ_THROW(file, ": unsupported model_type '", c.model_type,
             "' (supported: qwen3_moe, qwen2_moe, mixtral)");
  }
  c.num_layers = static_cast<int>(require_int(c.raw, {"num_hidden_layers"}, file));
  c.num_experts = static_cast<int>(require_int(c.raw, {"num_experts", "num_local_experts"}, file));
  c.hidden = require_int(c.raw, {"hidden_size"}, file);
  c.intermediate = c.naming == MoeNaming::kQwen3
                       ? require_int(c.raw, {"moe_intermediate_size"}, file)
                       : require_int(c.raw, {"intermediate_size"}, file);
  std::vector<int> dense_only;
  if (c.raw.contains("mlp_only_layers") && c.raw["mlp_only_layers"].is_array())
    for (const auto& v : c.raw["mlp_only_layers"]) dense_only.push_back(v.get<int>());
  int sparse_step = 1;
  if (c.raw.contains("decoder_sparse_step") && c.raw["decoder_sparse_step"].is_number_integer())
    sparse_step = std::max(1, c.raw["decoder_sparse_step"].get<int>());
  for (int l = 0; l < c.num_layers; ++l) {
    const bool dense = std::find(dense_only.begin(), dense_only.end(), l) != dense_only.end();
    if (!dense && (l + 1) % sparse_step == 0) c.moe_layers.push_back(l);
  }
  MQ_CHECK(!c.moe_layers.empty(), file,
           ": no layer has routed experts (mlp_only_layers / decoder_sparse_step leave none)");
  return c;
}

}  // namespace moequant
