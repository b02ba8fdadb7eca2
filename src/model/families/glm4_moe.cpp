// GLM-4.5 / 4.6 (glm4_moe): grouped-query attention with q/k/v biases (attention_bias, o_proj
// without one), q/k RMSNorm per head before RoPE (use_qk_norm), RoPE on the first
// partial_rotary_factor of each head in the rotate-half layout; DeepSeek's MoE block (the first
// first_k_dense_replace layers dense, the sigmoid group-limited router with its correction bias,
// mlp.shared_experts) and its multi-token-prediction layers past num_hidden_layers.
#include "families.h"
#include "moequant/common/error.h"

namespace moequant {

namespace {

class Glm4Moe : public ModelFamily {
 public:
  std::vector<std::string> model_types() const override { return {"glm4_moe"}; }
  int64_t num_experts(const nlohmann::json& c, const std::string& file) const override {
    return config_int(c, {"n_routed_experts"}, file, 1, kMaxExperts);
  }
  int64_t expert_intermediate(const nlohmann::json& c, const std::string& file) const override {
    return config_int(c, {"moe_intermediate_size"}, file, 1, kMaxWidth);
  }
  std::vector<int> moe_layers(const nlohmann::json& c, int num_layers,
                              const std::string& file) const override {
    return first_k_dense_layers(c, num_layers, file);
  }
  int extra_layers(const nlohmann::json& c, const std::string& file) const override {
    return static_cast<int>(config_int_or(c, {"num_nextn_predict_layers"}, file, 0, 0, 16));
  }
  void configure(DecoderConfig& d, const nlohmann::json& c,
                 const std::string& file) const override {
    d.qkv_bias = config_bool(c, "attention_bias", file, false);
    d.qk_norm = config_bool(c, "use_qk_norm", file, false);
    double partial = config_number(c, "partial_rotary_factor", file, 1.0);
    if (c.contains("rope_parameters") && c["rope_parameters"].is_object())
      partial = config_number(c["rope_parameters"], "partial_rotary_factor", file, partial);
    MQ_CHECK(partial > 0 && partial <= 1, file, ": partial_rotary_factor ", partial,
             " is not in (0, 1]");
    d.rope.dim = static_cast<int64_t>(d.head_dim * partial);
    MQ_CHECK(d.rope.dim >= 2 && d.rope.dim % 2 == 0, file, ": the rotated part of a head (",
             d.rope.dim, " of ", d.head_dim, ") must be even");
    configure_grouped_router(d, c, file);
    const int64_t shared = config_int_or(c, {"n_shared_experts"}, file, 0, 0, kMaxExperts);
    d.shared_intermediate = shared * config_int(c, {"moe_intermediate_size"}, file, 1, kMaxWidth);
    d.dense_intermediate = config_int_or(c, {"intermediate_size"}, file, 0, 1, kMaxWidth);
  }
  std::string shared_expert(int layer) const override {
    return moe_block(layer) + ".shared_experts";
  }
  nlohmann::json synthetic_config(const ModelShape& s) const override {
    nlohmann::json c = synthetic_base_config(s, "glm4_moe", "Glm4MoeForCausalLM");
    for (size_t i = 0; i < s.dense_layers.size(); ++i)
      MQ_CHECK(s.dense_layers[i] == static_cast<int>(i),
               "glm4_moe: dense layers must be the "
               "first ones (first_k_dense_replace), got ",
               s.dense_layers[i]);
    c["first_k_dense_replace"] = s.dense_layers.size();
    c["n_routed_experts"] = s.experts;
    c["n_shared_experts"] = 1;
    c["moe_intermediate_size"] = s.intermediate;
    c["intermediate_size"] = s.dense_intermediate_or_default();
    c["n_group"] = 1;
    c["topk_group"] = 1;
    c["norm_topk_prob"] = true;
    c["routed_scaling_factor"] = 2.5;
    c["attention_bias"] = true;
    c["use_qk_norm"] = true;
    c["partial_rotary_factor"] = 0.5;
    c["rope_parameters"]["partial_rotary_factor"] = 0.5;
    c["num_nextn_predict_layers"] = 1;
    return c;
  }
};

}  // namespace

const ModelFamily& glm4_moe_family() {
  static const Glm4Moe family;
  return family;
}

}  // namespace moequant
