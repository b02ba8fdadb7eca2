// The weights of a decoder's forward, read from a Hugging Face checkpoint as float32 on a device,
// one layer at a time (routed experts apart: they are held per rank, see moe_block.h).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "moequant/model/decoder_config.h"
#include "moequant/io/checkpoint_folder.h"

namespace moequant {

struct AttentionWeights {
  at::Tensor q, k, v, o;              // [heads*D, H], [kv*D, H], [kv*D, H], [H, heads*D]
  at::Tensor q_bias, k_bias, v_bias;  // Qwen2 (undefined otherwise)
  at::Tensor q_norm, k_norm;          // Qwen3: [D] (undefined otherwise)
};

// A SwiGLU MLP: down(silu(gate(x)) * up(x)); gate, up [I, H], down [H, I].
struct SwiGluWeights {
  at::Tensor gate, up, down;
};

// Everything of one decoder layer but its routed experts.
struct DecoderLayerWeights {
  at::Tensor input_norm, post_attention_norm;  // [H]
  AttentionWeights attention;
  at::Tensor router;              // [E, H] (MoE layers)
  SwiGluWeights dense_mlp;        // layers without routed experts
  SwiGluWeights shared_expert;    // Qwen2-MoE (undefined otherwise)
  at::Tensor shared_expert_gate;  // [1, H]
};

// The embedding, the final norm and the output projection (the embedding when tied).
struct ModelEnds {
  at::Tensor embed, final_norm, lm_head;
};

// A checkpoint tensor as float32 on `device`; its shape checked when `shape` is given. Errors
// name the folder and the tensor.
at::Tensor read_f32(const io::CheckpointFolder& ckpt, const std::string& name,
                    const at::Device& device, const std::vector<int64_t>& shape = {});

DecoderLayerWeights read_layer_weights(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                                       const DecoderConfig& d, int layer, const at::Device& device);
ModelEnds read_model_ends(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                          const DecoderConfig& d, const at::Device& device);

// One routed expert's weights (per-expert or fused 3-D on disk), float32 on `device`.
SwiGluWeights read_expert_weights(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                                  int layer, int expert, const at::Device& device);

}  // namespace moequant
