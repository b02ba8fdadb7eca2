// What Qwen2-MoE and Qwen3-MoE share: routed experts at model.layers.{L}.mlp.experts.{E}.
// {gate,up,down}_proj of moe_intermediate_size, router mlp.gate, the mlp_only_layers /
// decoder_sparse_step rule for dense layers, norm_topk_prob from config.json.
#pragma once

#include "families.h"

namespace moequant {

class QwenMoeLayout : public ModelFamily {
 public:
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
};

}  // namespace moequant
