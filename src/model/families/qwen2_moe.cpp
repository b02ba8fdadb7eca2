// Qwen2-MoE: the Qwen MoE layout (qwen_moe_layout.h) plus a shared expert beside the routed ones
// (mlp.shared_expert.{gate,up,down}_proj, scaled by sigmoid(mlp.shared_expert_gate)); q, k and v
// carry a bias; no q/k norm.
#include "qwen_moe_layout.h"

namespace moequant {

namespace {

class Qwen2Moe : public QwenMoeLayout {
 public:
  std::vector<std::string> model_types() const override { return {"qwen2_moe"}; }
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
