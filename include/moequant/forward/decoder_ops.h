// The pieces of a Hugging Face MoE decoder's forward, in float32, as transformers computes them:
// RMSNorm; RoPE (default or YaRN frequencies, over all or the first part of a head, in the
// rotate-half or DeepSeek's interleaved layout); grouped-query causal attention (q/k norm, q/k/v
// bias) and multi-head latent attention (DeepSeek-V3); softmax top-k and sigmoid group-limited
// routing; SwiGLU. Device-agnostic (CPU or CUDA).
#pragma once

#include <ATen/core/Tensor.h>

#include "moequant/forward/decoder_weights.h"
#include "moequant/forward/forward_hooks.h"
#include "moequant/model/decoder_config.h"

namespace moequant {

// weight * x / sqrt(mean(x^2) + eps) over the last dimension.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// cos and sin [T, rope.dim] of positions 0..T-1: both halves repeated as transformers does,
// scaled by the YaRN attention factor.
struct RopeTable {
  at::Tensor cos, sin;
};
RopeTable rope_table(int64_t seq_len, const RopeSettings& rope, const at::Device& device);
// The inverse frequencies [rope.dim / 2] (default, or YaRN's blend of interpolated and
// extrapolated ones), float32 as transformers computes them.
at::Tensor rope_inv_freq(const RopeSettings& rope, const at::Device& device);

// Self-attention of x [B, T, H] (already normed), of the config's kind: projections, norms, RoPE,
// causal softmax attention, o_proj. Returns [B, T, H]. `hooks` sees (or replaces) the inputs of
// the projections and the keys and values.
at::Tensor attention(const at::Tensor& x, const AttentionWeights& w, const DecoderConfig& d,
                     const RopeTable& rope, const ForwardHooks& hooks = {});

// The router's choice for tokens x [N, H]: experts [N, k] (int64) and their weights [N, k]
// (float32), by the config's router kind.
struct Routing {
  at::Tensor experts, weights;
};
Routing route(const at::Tensor& x, const at::Tensor& router, const at::Tensor& router_bias,
              const DecoderConfig& d);

// down(silu(gate(x)) * up(x)); `hidden`, when given, receives silu(gate(x)) * up(x) (the input
// of down).
at::Tensor swiglu(const at::Tensor& x, const SwiGluWeights& w, at::Tensor* hidden = nullptr);
// The same for a dense MLP or a shared expert, whose inputs `hooks` sees as the linears of
// `gate_use` (gate and up) and `down_use`.
at::Tensor swiglu(const at::Tensor& x, const SwiGluWeights& w, const ForwardHooks& hooks,
                  TensorUse gate_use, TensorUse down_use);

}  // namespace moequant
