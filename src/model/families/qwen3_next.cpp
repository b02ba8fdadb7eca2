// Qwen3-Next (qwen3_next): the Qwen MoE layout (qwen_moe_layout.h) with Qwen2-MoE's gated shared
// expert, and two kinds of layers (layer_types, else every full_attention_interval-th layer full
// attention): Gated DeltaNet linear attention (linear_attn.{in_proj_qkvz, in_proj_ba, conv1d,
// A_log, dt_bias, norm, out_proj}: carried over, never quantized) and gated full attention
// (q_proj gives query and gate, q/k RMSNorm per head, partial RoPE). The release's
// multi-token-prediction head (mtp.*) is carried over.
#include "qwen_moe_layout.h"

namespace moequant {

namespace {

class Qwen3Next : public QwenMoeLayout {
 public:
  std::vector<std::string> model_types() const override { return {"qwen3_next"}; }
  std::string shared_expert(int layer) const override {
    return moe_block(layer) + ".shared_expert";
  }
  std::string shared_expert_gate(int layer) const override {
    return moe_block(layer) + ".shared_expert_gate";
  }
  void configure(DecoderConfig& d, const nlohmann::json& c,
                 const std::string& file) const override {
    QwenMoeLayout::configure(d, c, file);
    d.normalize_topk = config_bool(c, "norm_topk_prob", file, true);
    d.shared_intermediate = config_int(c, {"shared_expert_intermediate_size"}, file, 1, kMaxWidth);
    d.shared_expert_gate = true;
    configure_qwen_hybrid(d, c, file, /*split_projections=*/false);
  }
  nlohmann::json synthetic_config(const ModelShape& s) const override {
    nlohmann::json c = qwen_config(s, "qwen3_next", "Qwen3NextForCausalLM");
    add_hybrid_keys(c, s);
    return c;
  }
};

}  // namespace

const ModelFamily& qwen3_next_family() {
  static const Qwen3Next family;
  return family;
}

}  // namespace moequant
