// The pieces of a Hugging Face MoE decoder's forward, in float32, as transformers computes them
// (Qwen3-MoE, Qwen2-MoE, Mixtral): RMSNorm, RoPE, grouped-query causal attention (with Qwen3's
// q/k norm or Qwen2's q/k/v bias), top-k routing and SwiGLU. Device-agnostic (CPU or CUDA).
#pragma once

#include <ATen/core/Tensor.h>

#include "moequant/model/decoder_config.h"
#include "moequant/forward/decoder_weights.h"

namespace moequant {

// weight * x / sqrt(mean(x^2) + eps) over the last dimension.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// cos and sin [T, head_dim] of positions 0..T-1 (default RoPE: inv_freq = 1 / theta^(2i/D),
// both halves repeated as transformers does).
struct RopeTable {
  at::Tensor cos, sin;
};
RopeTable rope_table(int64_t seq_len, const DecoderConfig& d, const at::Device& device);

// Self-attention of x [B, T, H] (already normed): projections, q/k norm, RoPE, grouped-query
// causal softmax attention, o_proj. Returns [B, T, H].
at::Tensor attention(const at::Tensor& x, const AttentionWeights& w, const DecoderConfig& d,
                     const RopeTable& rope);

// The router's choice for tokens x [N, H]: softmax over the experts, the top k, renormalized
// when the config says so. experts [N, k] (int64), weights [N, k] (float32).
struct Routing {
  at::Tensor experts, weights;
};
Routing route(const at::Tensor& x, const at::Tensor& router, const DecoderConfig& d);

// down(silu(gate(x)) * up(x)); `hidden`, when given, receives silu(gate(x)) * up(x) (the input
// of down).
at::Tensor swiglu(const at::Tensor& x, const SwiGluWeights& w, at::Tensor* hidden = nullptr);

}  // namespace moequant
