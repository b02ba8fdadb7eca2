// What the forward of a MoE decoder needs from config.json: the attention (its kind and sizes),
// RoPE, norms, the router and the MLPs. The keys every family spells alike are read here; the
// family fills in what differs (ModelFamily::configure). Numbers only: no tensors, no LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moequant/model/model_config.h"

namespace moequant {

enum class AttentionKind {
  kGqa,  // grouped-query attention: q/k/v/o projections (Qwen, Mixtral, GLM, ...)
  kMla,  // multi-head latent attention: low-rank q and kv, a decoupled RoPE part (DeepSeek-V3)
};

// What mixes the tokens in a decoder layer (transformers' "layer_types").
enum class LayerMixer {
  kFullAttention,     // causal attention over every earlier token
  kSlidingAttention,  // causal attention over the last sliding_window tokens (GPT-OSS)
  kChunkedAttention,  // causal attention inside chunks of attention_chunk_size (Llama-4)
  kGatedDeltaNet,     // linear attention (Qwen3-Next, Qwen3.5: "linear_attention")
};

enum class RouterKind {
  kSoftmaxTopK,         // softmax over the experts, the top k (renormalized when asked)
  kSigmoidGroupedTopK,  // DeepSeek / GLM: sigmoid scores, a correction bias for the choice only,
                        // group-limited top-k, weights renormalized and scaled
  kTopKSoftmax,         // GPT-OSS: the top k of the logits, softmax over those k
  kSigmoidTopK,         // Llama-4: the top k of the logits, sigmoid of each scales the input
};

// The experts' activation between fc1 and fc2.
enum class ExpertActivation {
  kSwiGlu,         // silu(gate) * up
  kClampedSwiGlu,  // GPT-OSS: g = min(gate, limit), u = clamp(up, -limit, limit),
                   // (u + 1) * g * sigmoid(alpha * g)
};

// Gated DeltaNet (linear attention) sizes; its tensors are carried over, never quantized.
struct DeltaNetSizes {
  int64_t key_heads = 0, value_heads = 0, key_head_dim = 0, value_head_dim = 0;
  int64_t conv_kernel = 0;
  // Qwen3.5: in_proj_qkv, in_proj_z, in_proj_b, in_proj_a; Qwen3-Next: in_proj_qkvz, in_proj_ba
  bool split_projections = false;
  int64_t key_dim() const { return key_heads * key_head_dim; }
  int64_t value_dim() const { return value_heads * value_head_dim; }
};

// RoPE over the first `dim` dimensions of a head (fewer than the head with a partial rotary
// factor), default or YaRN frequencies.
struct RopeSettings {
  double theta = 10000.0;
  int64_t dim = 0;
  bool interleaved = false;  // DeepSeek: rotated pairs are (2i, 2i+1), not (i, i + dim/2)
  // YaRN (rope_type "yarn"): 0 when not used.
  double yarn_factor = 0.0;
  int64_t yarn_original_max_positions = 0;
  double yarn_beta_fast = 32.0, yarn_beta_slow = 1.0;
  bool yarn_truncate = true;
  double yarn_mscale = 0.0, yarn_mscale_all_dim = 0.0;  // 0: not given
  double attention_factor = 1.0;  // cos and sin are scaled by it (YaRN's mscale ratio)
};

// YaRN's attention temperature for a context `factor` times longer: 0.1 * mscale * ln(factor) + 1
// (1 when factor <= 1), as transformers' yarn_get_mscale.
double yarn_mscale(double factor, double mscale);

// Multi-head latent attention sizes (DeepSeek-V3): q_lora_rank 0 means a plain q_proj.
struct MlaSizes {
  int64_t q_lora_rank = 0;
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
};

struct DecoderConfig {
  int64_t vocab = 0;
  int64_t hidden = 0;
  int64_t max_positions = 0;  // max_position_embeddings (0: not given)
  double rms_eps = 1e-6;
  bool tie_word_embeddings = false;

  // ---- attention ----------------------------------------------------------------------------
  AttentionKind attention = AttentionKind::kGqa;
  int heads = 0;
  int kv_heads = 0;
  int64_t head_dim = 0;   // GQA
  bool qkv_bias = false;  // a bias on q, k and v (Qwen2, GLM with attention_bias)
  bool qk_norm = false;   // RMSNorm of each head's q and k before RoPE (Qwen3, GLM)
  MlaSizes mla;           // kMla
  RopeSettings rope;
  double softmax_scale =
      0.0;              // the attention scores' factor (1 / sqrt(qk head dim), YaRN's mscale)
  bool o_bias = false;  // a bias on o_proj too (GPT-OSS, OLMoE with attention_bias)
  bool sinks = false;   // GPT-OSS: a learned logit per head, an extra softmax column
  bool qk_norm_whole = false;  // OLMoE: the q/k RMSNorm spans the whole projection, not a head
  bool gated_query = false;    // Qwen3-Next/3.5: q_proj gives each head's query and its gate
  bool qk_l2_norm = false;     // Llama-4: q and k L2-normalized per head, no weight
  double clip_qkv = 0.0;       // OLMoE: q, k and v clamped to [-clip, clip] (0: not)
  // Per decoder layer (empty: every layer kFullAttention); see mixer().
  std::vector<LayerMixer> mixers;
  int64_t sliding_window = 0;  // kSlidingAttention
  int64_t chunk_size = 0;      // kChunkedAttention
  DeltaNetSizes delta_net;     // kGatedDeltaNet layers
  LayerMixer mixer(int layer) const {
    return mixers.empty() ? LayerMixer::kFullAttention : mixers.at(static_cast<size_t>(layer));
  }

  // ---- MoE routing --------------------------------------------------------------------------
  RouterKind router = RouterKind::kSoftmaxTopK;
  int top_k = 0;
  bool normalize_topk = false;  // renormalize the top-k weights to sum to one
  int n_group = 1,
      topk_group = 1;           // kSigmoidGroupedTopK: experts in n_group groups, topk_group kept
  double routed_scaling = 1.0;  // kSigmoidGroupedTopK: the routed output's factor
  bool router_bias = false;     // e_score_correction_bias beside the router weight
  bool router_linear_bias = false;  // GPT-OSS: the router is a linear with a bias
  // ---- routed experts -----------------------------------------------------------------------
  ExpertActivation activation = ExpertActivation::kSwiGlu;
  double activation_alpha = 1.702, activation_limit = 7.0;  // kClampedSwiGlu
  bool expert_bias = false;  // GPT-OSS: gate_up_proj_bias [E, 2I] and down_proj_bias [E, H]

  // ---- MLPs ---------------------------------------------------------------------------------
  int64_t dense_intermediate = 0;   // the MLP of a layer without routed experts
  int64_t shared_intermediate = 0;  // the shared expert of a MoE layer (0: none)
  bool shared_expert_gate = false;  // Qwen2: sigmoid(shared_expert_gate(x)) scales it
};

// Reads and checks the forward's keys; errors name config.json and the key.
DecoderConfig decoder_config(const ModelConfig& config);

}  // namespace moequant
