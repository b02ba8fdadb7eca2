// What Qwen2-MoE and Qwen3-MoE share: routed experts at model.layers.{L}.mlp.experts.{E}.
// {gate,up,down}_proj of moe_intermediate_size, router mlp.gate (softmax top-k, renormalized when
// norm_topk_prob), the mlp_only_layers / decoder_sparse_step rule for dense layers, whose MLP is
// intermediate_size wide.
#pragma once

#include "families.h"

namespace moequant {

class QwenMoeLayout : public ModelFamily {
 public:
  int64_t expert_intermediate(const nlohmann::json& c, const std::string& file) const override {
    return config_int(c, {"moe_intermediate_size"}, file, 1, kMaxWidth);
  }
  std::vector<int> moe_layers(const nlohmann::json& c, int num_layers,
                              const std::string& file) const override {
    return sparse_step_layers(c, num_layers, file);
  }
  void configure(DecoderConfig& d, const nlohmann::json& c,
                 const std::string& file) const override {
    d.normalize_topk = config_bool(c, "norm_topk_prob", file, false);
    d.dense_intermediate = config_int_or(c, {"intermediate_size"}, file, 0, 1, kMaxWidth);
  }

 protected:
  // The config.json keys of a synthetic Qwen-MoE (the caller adds its family's own).
  static nlohmann::json qwen_config(const ModelShape& s, const std::string& type,
                                    const std::string& architecture) {
    nlohmann::json c = synthetic_base_config(s, type, architecture);
    c["num_experts"] = s.experts;
    c["moe_intermediate_size"] = s.intermediate;
    c["intermediate_size"] = s.dense_intermediate_or_default();
    c["decoder_sparse_step"] = 1;
    c["mlp_only_layers"] = s.dense_layers;
    return c;
  }
  // Qwen3-Next's and Qwen3.5's hybrid keys: three Gated DeltaNet layers per full attention one
  // (as the releases), DeltaNet heads as wide as the attention's, partial RoPE, a gated shared
  // expert as wide as a routed one.
  static void add_hybrid_keys(nlohmann::json& c, const ModelShape& s) {
    c["shared_expert_intermediate_size"] = s.intermediate;
    c["norm_topk_prob"] = true;
    c["partial_rotary_factor"] = 0.25;
    c["rope_parameters"]["partial_rotary_factor"] = 0.25;
    c["full_attention_interval"] = 4;
    nlohmann::json types = nlohmann::json::array();
    for (int l = 0; l < s.layers; ++l)
      types.push_back((l + 1) % 4 == 0 ? "full_attention" : "linear_attention");
    c["layer_types"] = types;
    c["linear_num_key_heads"] = s.kv_heads;
    c["linear_num_value_heads"] = s.heads;
    c["linear_key_head_dim"] = s.head_dim_or_default();
    c["linear_value_head_dim"] = s.head_dim_or_default();
    c["linear_conv_kernel_dim"] = 4;
  }
};

}  // namespace moequant
