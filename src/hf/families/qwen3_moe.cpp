// Qwen3-MoE: routed experts at model.layers.{L}.mlp.experts.{E}.{gate,up,down}_proj, router
// mlp.gate; layers in mlp_only_layers or off the decoder_sparse_step hold a dense mlp of
// intermediate_size; q/k RMSNorm per head; norm_topk_prob from config.json.
#include "families.h"

namespace moequant {

namespace {

class Qwen3Moe : public ModelFamily {
 public:
  std::vector<std::string> model_types() const override { return {"qwen3_moe"}; }
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
  bool qk_norm() const override { return true; }
};

}  // namespace

const ModelFamily& qwen3_moe_family() {
  static const Qwen3Moe family;
  return family;
}

}  // namespace moequant
