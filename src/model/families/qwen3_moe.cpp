// Qwen3-MoE: the Qwen MoE layout (qwen_moe_layout.h) with a q/k RMSNorm per head.
#include "qwen_moe_layout.h"

namespace moequant {

namespace {

class Qwen3Moe : public QwenMoeLayout {
 public:
  std::vector<std::string> model_types() const override { return {"qwen3_moe"}; }
  bool qk_norm() const override { return true; }
};

}  // namespace

const ModelFamily& qwen3_moe_family() {
  static const Qwen3Moe family;
  return family;
}

}  // namespace moequant
