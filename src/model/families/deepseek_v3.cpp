// DeepSeek-V3 / R1 / V3.1 and Kimi-K2 (model_type kimi_k2 with DeepseekV3ForCausalLM): multi-head
// latent attention (q_a_proj / q_a_layernorm / q_b_proj, or q_proj without q_lora_rank;
// kv_a_proj_with_mqa / kv_a_layernorm / kv_b_proj; o_proj), RoPE on the decoupled qk_rope part in
// the interleaved layout, YaRN; the first first_k_dense_replace layers dense, then
// n_routed_experts experts at mlp.experts.{E} with the sigmoid, group-limited router mlp.gate
// (+ e_score_correction_bias) and n_shared_experts shared experts at mlp.shared_experts;
// num_nextn_predict_layers multi-token-prediction layers past num_hidden_layers.
#include <algorithm>
#include <cmath>

#include "families.h"
#include "moequant/common/error.h"

namespace moequant {

namespace {

class DeepseekV3 : public ModelFamily {
 public:
  std::vector<std::string> model_types() const override { return {"deepseek_v3", "kimi_k2"}; }
  int64_t num_experts(const nlohmann::json& c, const std::string& file) const override {
    if (c.value("model_type", "") == "kimi_k2") check_deepseek_architecture(c, file);
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
    d.attention = AttentionKind::kMla;
    MlaSizes& m = d.mla;
    m.q_lora_rank = config_int_or(c, {"q_lora_rank"}, file, 0, 1, kMaxWidth);
    m.kv_lora_rank = config_int(c, {"kv_lora_rank"}, file, 1, kMaxWidth);
    m.qk_nope_head_dim = config_int(c, {"qk_nope_head_dim"}, file, 1, kMaxWidth);
    m.qk_rope_head_dim = config_int(c, {"qk_rope_head_dim"}, file, 2, kMaxWidth);
    m.v_head_dim = config_int(c, {"v_head_dim"}, file, 1, kMaxWidth);
    MQ_CHECK(m.qk_rope_head_dim % 2 == 0, file, ": qk_rope_head_dim ", m.qk_rope_head_dim,
             " must be even for RoPE");
    d.rope.dim = m.qk_rope_head_dim;
    d.rope.interleaved = config_bool(c, "rope_interleave", file, true);
    d.softmax_scale = 1.0 / std::sqrt(static_cast<double>(m.qk_head_dim()));
    // YaRN's attention temperature enters the scores squared (transformers' DeepseekV3Attention).
    if (d.rope.yarn_factor > 0 && d.rope.yarn_mscale_all_dim > 0) {
      const double mscale = yarn_mscale(d.rope.yarn_factor, d.rope.yarn_mscale_all_dim);
      d.softmax_scale *= mscale * mscale;
    }
    configure_grouped_router(d, c, file);
    const int64_t shared = config_int_or(c, {"n_shared_experts"}, file, 0, 0, kMaxExperts);
    d.shared_intermediate = shared * config_int(c, {"moe_intermediate_size"}, file, 1, kMaxWidth);
    d.dense_intermediate = config_int_or(c, {"intermediate_size"}, file, 0, 1, kMaxWidth);
  }
  std::string shared_expert(int layer) const override {
    return moe_block(layer) + ".shared_experts";
  }
  nlohmann::json synthetic_config(const ModelShape& s) const override {
    nlohmann::json c = synthetic_base_config(s, "deepseek_v3", "DeepseekV3ForCausalLM");
    const int64_t D = s.head_dim_or_default();
    for (size_t i = 0; i < s.dense_layers.size(); ++i)
      MQ_CHECK(s.dense_layers[i] == static_cast<int>(i),
               "deepseek_v3: dense layers must be the "
               "first ones (first_k_dense_replace), got ",
               s.dense_layers[i]);
    c["first_k_dense_replace"] = s.dense_layers.size();
    c["n_routed_experts"] = s.experts;
    c["n_shared_experts"] = 1;
    c["moe_intermediate_size"] = s.intermediate;
    c["intermediate_size"] = s.dense_intermediate_or_default();
    c["n_group"] = synthetic_groups(s);
    c["topk_group"] = std::max(1, synthetic_groups(s) / 2);
    c["norm_topk_prob"] = true;
    c["routed_scaling_factor"] = 2.5;
    c["scoring_func"] = "sigmoid";
    c["topk_method"] = "noaux_tc";
    // DeepSeek-V3's ranks where the width allows (hidden 7168: 1536 and 512).
    c["q_lora_rank"] = std::min<int64_t>(1536, s.hidden / 2);
    c["kv_lora_rank"] = std::min<int64_t>(512, s.hidden / 4);
    c["qk_nope_head_dim"] = D;
    c["qk_rope_head_dim"] = std::max<int64_t>(2, D / 2 / 2 * 2);
    c["v_head_dim"] = D;
    c["head_dim"] = c["qk_rope_head_dim"];
    c["num_key_value_heads"] = s.heads;
    c["rope_interleave"] = true;
    c["num_nextn_predict_layers"] = 1;
    return c;
  }

 private:
  static void check_deepseek_architecture(const nlohmann::json& c, const std::string& file) {
    bool named = false;
    if (c.contains("architectures") && c["architectures"].is_array())
      for (const auto& a : c["architectures"]) named = named || a == "DeepseekV3ForCausalLM";
    MQ_CHECK(named, file,
             ": model_type kimi_k2 is read as DeepSeek-V3 only when 'architectures' "
             "names DeepseekV3ForCausalLM");
  }
};

}  // namespace

const ModelFamily& deepseek_v3_family() {
  static const DeepseekV3 family;
  return family;
}

}  // namespace moequant
