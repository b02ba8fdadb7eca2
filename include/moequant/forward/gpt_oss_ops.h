// The forward pieces GPT-OSS adds to a MoE decoder (transformers' modeling_gpt_oss.py):
// attention with a learned sink logit per head (an extra softmax column that is then dropped)
// and a sliding window on alternating layers; the router's top k of its biased logits with a
// softmax over those k; experts with biases on both linears and a clamped SwiGLU
// (g = min(gate, limit), u = clamp(up, -limit, limit), (u + 1) * g * sigmoid(alpha * g)). The
// expert activation is also every other family's SwiGLU, so that the expert loops call one pair
// of functions.
#pragma once

#include <ATen/core/Tensor.h>

#include "moequant/forward/decoder_ops.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/model/model_config.h"

namespace moequant {

// Softmax attention of q, k [B, n, T, dq] and v [B, n, T, dv] (causal; only the last `window`
// keys when window > 0; `sinks` [n], when defined, one more logit per head in every softmax):
// [B, n, T, dv].
at::Tensor windowed_attention_with_sinks(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, double scale, const at::Tensor& sinks,
                                         int64_t window);

// GPT-OSS's router: the top k of `logits` [N, E] (the bias already added), softmax over them.
Routing topk_then_softmax(const at::Tensor& logits, const DecoderConfig& d);

// An expert's fc1 and activation: silu(gate x) * up x, or the clamped form with biases when
// w.clamp_limit > 0; then its fc2: down h (+ down_bias when defined).
at::Tensor expert_hidden(const at::Tensor& x, const SwiGluWeights& w);
at::Tensor expert_down(const at::Tensor& h, const SwiGluWeights& w);

// Adds what a GPT-OSS expert carries besides its matrices to `w` (float32 on `device`): the
// gate and up biases of intermediate rows [begin, end) (the ETP shard) and, when `down_bias`
// (one ETP shard per expert adds it, as fc2's partial sums are added up), the down bias; and the
// clamped SwiGLU's settings. Nothing for a family without expert biases.
void add_expert_extras(SwiGluWeights& w, const io::CheckpointFolder& ckpt,
                       const ModelConfig& config, const DecoderConfig& d, int layer, int expert,
                       int64_t begin, int64_t end, bool down_bias, const at::Device& device);

}  // namespace moequant
