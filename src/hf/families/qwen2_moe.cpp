// Qwen2-MoE: Qwen3-MoE's naming and layer rules, plus a shared expert beside the routed ones
// (mlp.shared_expert.{gate,up,down}_proj, scaled by sigmoid(mlp.shared_expert_gate)); q, k and v
// carry a bias; no q/k norm.
#include "families.h"

namespace moequant {

namespace {

class Qwen2Moe : public ModelFamily {
 public:
  std::vector<std::string> model_types() const override { return {"qwen2_moe"}; }
  int64_t expert_intermediate(const nlohmann::json& c, const std::string& file) const override {
    return config_int(c, {"moe_intermediate_size"}, file);
  }
  std::vector<int> moe_layers(const nlohmann::json& c, int num_layers) const override {
    return sparse_step_layers(c, num_layers);
  }
  bool normalize_topk(const nlohmann::json& c) const override {
    return config_bool(c, "norm_topk_prob", false);
  }
  std::string moe_block(int layer) const override { return layer_prefix(layer) + "mlp"; }
  std::string expert_proj(ExpertProj p) const override { return swiglu_proj_name(p); }
  std::string shared_expert(int layer) const override {
    return moe_block(layer) + ".shared_expert";
  }
  std::string shared_expert_gate(int layer) const override {
    return moe_block(layer) + ".shared_expert_gate";
  }
  bool qkv_bias() const override { return true; }
};

}  // namespace

const ModelFamily& qwen2_moe_family() {
  static const Qwen2Moe family;
  return family;
}

}  // namespace moequant
