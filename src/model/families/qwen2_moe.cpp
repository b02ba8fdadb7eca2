// Qwen2-MoE: the Qwen MoE layout (qwen_moe_layout.h) plus a shared expert beside the routed ones
// (mlp.shared_expert.{gate,up,down}_proj of shared_expert_intermediate_size, scaled by
// sigmoid(mlp.shared_expert_gate)); q, k and v carry a bias; no q/k norm.
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
  void configure(DecoderConfig& d, const nlohmann::json& c,
                 const std::string& file) const override {
    QwenMoeLayout::configure(d, c, file);
    d.qkv_bias = true;
    d.shared_intermediate = config_int(c, {"shared_expert_intermediate_size"}, file, 1, kMaxWidth);
    d.shared_expert_gate = true;
  }
  nlohmann::json synthetic_config(const ModelShape& s) const override {
    nlohmann::json c = qwen_config(s, "qwen2_moe", "Qwen2MoeForCausalLM");
    c["norm_topk_prob"] = false;
    c["shared_expert_intermediate_size"] = s.dense_intermediate_or_default();
    c["qkv_bias"] = true;
    return c;
  }
};

}  // namespace

const ModelFamily& qwen2_moe_family() {
  static const Qwen2Moe family;
  return family;
}

}  // namespace moequant
