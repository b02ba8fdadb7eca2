// The registry of model families (each one file beside this) and what several of them share:
// names, the config.json rules for which layers are MoE, and the common part of a synthetic
// config.json.
#pragma once

#include <string>
#include <vector>

#include "moequant/model/config_values.h"
#include "moequant/model/decoder_config.h"
#include "moequant/model/model_family.h"

namespace moequant {

const ModelFamily& qwen3_moe_family();
const ModelFamily& qwen2_moe_family();
const ModelFamily& mixtral_family();
const ModelFamily& deepseek_v3_family();
const ModelFamily& glm4_moe_family();
const ModelFamily& gpt_oss_family();
const ModelFamily& olmoe_family();
const ModelFamily& llama4_family();
const ModelFamily& qwen3_next_family();
const ModelFamily& qwen3_5_moe_family();          // qwen3_5_moe_text: the text model alone
const ModelFamily& qwen3_5_moe_wrapper_family();  // qwen3_5_moe: inside the multimodal wrapper
// gate_proj / up_proj / down_proj.
std::string swiglu_proj_name(ExpertProj p);
// Qwen's rule: layer l is MoE unless listed in mlp_only_layers, and when (l + 1) is a multiple
// of decoder_sparse_step (default 1).
std::vector<int> sparse_step_layers(const nlohmann::json& c, int num_layers,
                                    const std::string& file);
// DeepSeek's rule (GLM's too): the first first_k_dense_replace layers are dense, then every
// moe_layer_freq-th layer (default 1) is MoE.
std::vector<int> first_k_dense_layers(const nlohmann::json& c, int num_layers,
                                      const std::string& file);
// Gated DeltaNet sizes (linear_num_key_heads, linear_key_head_dim, linear_num_value_heads,
// linear_value_head_dim, linear_conv_kernel_dim) and the gated full attention of Qwen3-Next and
// Qwen3.5 (q_proj gives query and gate, q/k RMSNorm per head, partial RoPE).
void configure_qwen_hybrid(DecoderConfig& d, const nlohmann::json& c, const std::string& file,
                           bool split_projections);

// The sigmoid, group-limited router of DeepSeek and GLM (n_group, topk_group,
// routed_scaling_factor, norm_topk_prob, e_score_correction_bias).
void configure_grouped_router(DecoderConfig& d, const nlohmann::json& c, const std::string& file);

// The keys every synthetic config.json has (sizes, heads, vocabulary, norms, RoPE, dtype).
nlohmann::json synthetic_base_config(const ModelShape& s, const std::string& model_type,
                                     const std::string& architecture);
// The number of experts per group of a synthetic grouped router: groups of >= top_k experts.
int synthetic_groups(const ModelShape& s);

}  // namespace moequant
