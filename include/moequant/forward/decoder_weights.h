// The weights of a decoder's forward, read from a checkpoint as float32 on a device, one layer at
// a time (routed experts apart: they are held per rank, see moe_block.h). Which tensors a layer
// has, and what the family calls them, is the model layer's (model_tensors.h); they are read here
// by what they are used for.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>

#include "moequant/forward/checkpoint_tensor.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/model/decoder_config.h"
#include "moequant/model/model_tensors.h"

namespace moequant {

struct AttentionWeights {
  // grouped-query attention: [heads*D, H], [kv*D, H], [kv*D, H], [H, heads*D]; q is also MLA's
  // q_proj when it has no q_lora_rank, and o MLA's o_proj
  at::Tensor q, k, v, o;
  at::Tensor q_bias, k_bias, v_bias;  // attention bias (undefined otherwise)
  at::Tensor o_bias;                  // GPT-OSS, OLMoE with attention_bias (undefined otherwise)
  at::Tensor q_norm, k_norm;          // q/k RMSNorm [D] per head, or [heads*D] / [kv*D] (OLMoE)
  at::Tensor sinks;                   // GPT-OSS: one logit per head [heads] (undefined otherwise)
  int64_t window = 0;                 // this layer's sliding window (GPT-OSS), 0: full causal
  // multi-head latent attention
  at::Tensor q_a, q_a_norm, q_b, kv_a, kv_a_norm, kv_b;
};

// A SwiGLU MLP: down(silu(gate(x)) * up(x)); gate, up [I, H], down [H, I]. GPT-OSS's experts
// add biases and clamp (gpt_oss_ops.h): undefined biases and clamp_limit 0 otherwise.
struct SwiGluWeights {
  at::Tensor gate, up, down;
  at::Tensor gate_bias, up_bias, down_bias;
  double clamp_limit = 0.0, clamp_alpha = 0.0;
};

// Everything of one decoder layer but its routed experts.
struct DecoderLayerWeights {
  at::Tensor input_norm, post_attention_norm;  // [H]
  AttentionWeights attention;
  at::Tensor router;              // [E, H] (MoE layers)
  at::Tensor router_bias;         // [E] DeepSeek/GLM e_score_correction_bias, or GPT-OSS's router
                                  // linear bias (undefined otherwise)
  SwiGluWeights dense_mlp;        // layers without routed experts
  SwiGluWeights shared_expert;    // MoE layers with a shared expert (undefined otherwise)
  at::Tensor shared_expert_gate;  // [1, H] Qwen2 (undefined otherwise)
};

// The embedding, the final norm and the output projection (the embedding when tied).
struct ModelEnds {
  at::Tensor embed, final_norm, lm_head;
};

// Reads a linear's weight [out, in] float32 on the device, or returns an undefined tensor for
// the default (read_f32 of the checkpoint tensor): eval dequantizes an export's quantized ones.
using LinearReader = std::function<at::Tensor(const ModelTensor& linear)>;

DecoderLayerWeights read_layer_weights(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                                       const DecoderConfig& d, int layer, const at::Device& device,
                                       const LinearReader& read_linear = {});
ModelEnds read_model_ends(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                          const DecoderConfig& d, const at::Device& device);

// One routed expert's weights (per-expert or fused 3-D on disk), float32 on `device`.
SwiGluWeights read_expert_weights(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                                  int layer, int expert, const at::Device& device);

}  // namespace moequant
