// OLMoE (olmoe): grouped-query attention whose q/k RMSNorm spans the whole projection (q_norm
// [heads * D], k_norm [kv_heads * D]) before RoPE, optionally q/k/v clamped (clip_qkv); every
// layer MoE with num_experts experts of intermediate_size at mlp.experts.{E}, router mlp.gate
// (softmax, top k, renormalized only with norm_topk_prob, which the release leaves false).
#include "families.h"
#include "moequant/common/error.h"

namespace moequant {

namespace {

class Olmoe : public ModelFamily {
 public:
  std::vector<std::string> model_types() const override { return {"olmoe"}; }
  int64_t expert_intermediate(const nlohmann::json& c, const std::string& file) const override {
    return config_int(c, {"intermediate_size"}, file, 1, kMaxWidth);
  }
  void configure(DecoderConfig& d, const nlohmann::json& c,
                 const std::string& file) const override {
    d.qk_norm = d.qk_norm_whole = true;
    d.qkv_bias = d.o_bias = config_bool(c, "attention_bias", file, false);
    d.normalize_topk = config_bool(c, "norm_topk_prob", file, false);
    d.clip_qkv = config_number(c, "clip_qkv", file, 0.0);
    MQ_CHECK(d.clip_qkv >= 0, file, ": clip_qkv ", d.clip_qkv, " must be positive or null");
  }
  nlohmann::json synthetic_config(const ModelShape& s) const override {
    MQ_CHECK(s.dense_layers.empty(), "olmoe has no dense layers");
    nlohmann::json c = synthetic_base_config(s, "olmoe", "OlmoeForCausalLM");
    c["num_experts"] = s.experts;
    c["intermediate_size"] = s.intermediate;
    c["norm_topk_prob"] = false;
    c["clip_qkv"] = nullptr;
    c["rms_norm_eps"] = 1e-5;
    c.erase("head_dim");  // OLMoE's heads are hidden / heads wide
    return c;
  }
};

}  // namespace

const ModelFamily& olmoe_family() {
  static const Olmoe family;
  return family;
}

}  // namespace moequant
