// GPT-OSS (gpt_oss): grouped-query attention with biases on q, k, v and o and a learned sink
// logit per head (self_attn.sinks), sliding-window and full attention layers alternating
// (layer_types), YaRN RoPE; every layer MoE, router mlp.router (a linear with a bias: the top k
// of its logits, softmax over those k), num_local_experts experts of intermediate_size stored
// fused as x @ W with gate and up interleaved (gate_up_proj [E, H, 2I], down_proj [E, I, H]) and
// biases beside them (gate_up_proj_bias, down_proj_bias; carried over), a clamped SwiGLU. The
// release stores the experts as MXFP4 (docs/formats.md, "Quantized sources").
#include "families.h"
#include "moequant/common/error.h"

namespace moequant {

namespace {

class GptOss : public ModelFamily {
 public:
  std::vector<std::string> model_types() const override { return {"gpt_oss"}; }
  int64_t expert_intermediate(const nlohmann::json& c, const std::string& file) const override {
    return config_int(c, {"intermediate_size"}, file, 1, kMaxWidth);
  }
  void configure(DecoderConfig& d, const nlohmann::json& c,
                 const std::string& file) const override {
    d.qkv_bias = d.o_bias = config_bool(c, "attention_bias", file, true);
    d.sinks = true;
    d.router = RouterKind::kTopKSoftmax;
    d.router_linear_bias = true;
    d.activation = ExpertActivation::kClampedSwiGlu;
    d.activation_alpha = 1.702;  // a constant of GptOssExperts, not a config key
    d.activation_limit = config_number(c, "swiglu_limit", file, 7.0);
    MQ_CHECK(d.activation_limit > 0, file, ": swiglu_limit ", d.activation_limit,
             " must be positive");
    d.expert_bias = true;
  }
  std::string router(int layer) const override { return moe_block(layer) + ".router"; }
  FusedExpertLayout fused_layout() const override { return {true, true}; }
  nlohmann::json synthetic_config(const ModelShape& s) const override {
    MQ_CHECK(s.dense_layers.empty(), "gpt_oss has no dense layers");
    nlohmann::json c = synthetic_base_config(s, "gpt_oss", "GptOssForCausalLM");
    c["num_local_experts"] = s.experts;
    c["intermediate_size"] = s.intermediate;
    c["attention_bias"] = true;
    c["swiglu_limit"] = 7.0;
    c["sliding_window"] = 128;
    c["rms_norm_eps"] = 1e-5;
    nlohmann::json types = nlohmann::json::array();
    for (int l = 0; l < s.layers; ++l)
      types.push_back(l % 2 == 0 ? "sliding_attention" : "full_attention");
    c["layer_types"] = types;
    // The release's YaRN (gpt-oss-120b: theta 150000, factor 32 over 4096 positions).
    c["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 150000.0},
                            {"factor", 32.0},      {"original_max_position_embeddings", 4096},
                            {"beta_fast", 32.0},   {"beta_slow", 1.0},
                            {"truncate", false}};
    c["max_position_embeddings"] = 131072;
    return c;
  }
};

}  // namespace

const ModelFamily& gpt_oss_family() {
  static const GptOss family;
  return family;
}

}  // namespace moequant
