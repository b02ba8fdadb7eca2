// Qwen3-MoE: the Qwen MoE layout (qwen_moe_layout.h) with a q/k RMSNorm per head.
#include "qwen_moe_layout.h"

namespace moequant {

namespace {

class Qwen3Moe : public QwenMoeLayout {
 public:
  std::vector<std::string> model_types() const override { return {"qwen3_moe"}; }
  void configure(DecoderConfig& d, const nlohmann::json& c,
                 const std::string& file) const override {
    QwenMoeLayout::configure(d, c, file);
    d.qk_norm = true;
  }
  nlohmann::json synthetic_config(const ModelShape& s) const override {
    nlohmann::json c = qwen_config(s, "qwen3_moe", "Qwen3MoeForCausalLM");
    c["norm_topk_prob"] = true;
    return c;
  }
};

}  // namespace

const ModelFamily& qwen3_moe_family() {
  static const Qwen3Moe family;
  return family;
}

}  // namespace moequant
