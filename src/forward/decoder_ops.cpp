#include "moequant/forward/decoder_ops.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace moequant {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor variance = x.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x * at::rsqrt(variance + eps));
}

RopeTable rope_table(int64_t seq_len, const DecoderConfig& d, const at::Device& device) {
  const at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  // As transformers: inv_freq = 1 / theta^(arange(0, D, 2) / D) in float32, freqs = pos x inv.
  const at::Tensor exponent =
      at::arange(0, d.head_dim, 2, at::TensorOptions().dtype(at::kLong).device(device))
          .to(at::kFloat) /
      static_cast<double>(d.head_dim);
  const at::Tensor inv_freq = 1.0 / at::pow(at::scalar_tensor(d.rope_theta, f32), exponent);
  const at::Tensor positions = at::arange(seq_len, f32);
  const at::Tensor freqs = at::outer(positions, inv_freq);
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos(), emb.sin()};
}

namespace {

// [B, T, n, D] -> rotate_half: cat(-x2, x1) over the last dimension.
at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = at::Tensor()) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

}  // namespace

at::Tensor attention(const at::Tensor& x, const AttentionWeights& w, const DecoderConfig& d,
                     const RopeTable& rope) {
  const int64_t B = x.size(0), T = x.size(1), D = d.head_dim;
  at::Tensor q = project(x, w.q, w.q_bias).view({B, T, d.heads, D});
  at::Tensor k = project(x, w.k, w.k_bias).view({B, T, d.kv_heads, D});
  at::Tensor v = project(x, w.v, w.v_bias).view({B, T, d.kv_heads, D});
  if (w.q_norm.defined()) {
    q = rms_norm(q, w.q_norm, d.rms_eps);
    k = rms_norm(k, w.k_norm, d.rms_eps);
  }
  q = q.transpose(1, 2);  // [B, heads, T, D]
  k = k.transpose(1, 2);
  v = v.transpose(1, 2);
  const at::Tensor cos = rope.cos.narrow(0, 0, T), sin = rope.sin.narrow(0, 0, T);
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;
  const int64_t groups = d.heads / d.kv_heads;
  if (groups > 1) {  // grouped-query attention: each key/value head serves `groups` query heads
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
  at::Tensor scores =
      at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(D)));
  const at::Tensor future =
      at::ones({T, T}, at::TensorOptions().dtype(at::kBool).device(x.device())).triu(1);
  scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  const at::Tensor out = at::matmul(at::softmax(scores, -1), v);  // [B, heads, T, D]
  return project(out.transpose(1, 2).reshape({B, T, d.heads * D}), w.o);
}

Routing route(const at::Tensor& x, const at::Tensor& router, const DecoderConfig& d) {
  const at::Tensor probs = at::softmax(at::linear(x, router), -1);
  auto [weights, experts] = at::topk(probs, d.top_k, -1);
  if (d.normalize_topk) weights = weights / weights.sum(-1, /*keepdim=*/true);
  return {experts, weights};
}

at::Tensor swiglu(const at::Tensor& x, const SwiGluWeights& w, at::Tensor* hidden) {
  at::Tensor h = at::silu(at::linear(x, w.gate)) * at::linear(x, w.up);
  at::Tensor out = at::linear(h, w.down);
  if (hidden) *hidden = std::move(h);
  return out;
}

}  // namespace moequant
