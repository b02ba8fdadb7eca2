#include "moequant/forward/decoder_ops.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "moequant/common/error.h"
#include "moequant/forward/gpt_oss_ops.h"

namespace moequant {

namespace {

constexpr double kPi = 3.14159265358979323846;

// [..., n] -> rotate_half: cat(-x2, x1) over the last dimension.
at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// RoPE on x [B, n, T, dim] with cos/sin [T, dim]; interleaved: the pairs (2i, 2i+1) are first
// brought into the rotate-half order (evens, then odds), as transformers'
// apply_rotary_pos_emb_interleave does.
at::Tensor apply_rope(at::Tensor x, const RopeTable& rope, bool interleaved) {
  const int64_t T = x.size(2), dim = x.size(3);
  if (interleaved)
    x = x.reshape({x.size(0), x.size(1), T, dim / 2, 2}).transpose(4, 3).reshape(x.sizes());
  const at::Tensor cos = rope.cos.narrow(0, 0, T), sin = rope.sin.narrow(0, 0, T);
  return x * cos + rotate_half(x) * sin;
}

at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = at::Tensor()) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

// Causal softmax attention of q, k [B, n, T, dq] and v [B, n, T, dv]: [B, n, T, dv].
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale) {
  const int64_t T = q.size(2);
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale;
  const at::Tensor future =
      at::ones({T, T}, at::TensorOptions().dtype(at::kBool).device(q.device())).triu(1);
  scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  return at::matmul(at::softmax(scores, -1), v);
}

at::Tensor gqa_attention(const at::Tensor& x_in, const AttentionWeights& w, const DecoderConfig& d,
                         const RopeTable& rope, const ForwardHooks& hooks) {
  const int64_t B = x_in.size(0), T = x_in.size(1), D = d.head_dim, R = d.rope.dim;
  const at::Tensor x = hooks.input(TensorUse::kQ, x_in);  // q, k and v share their input
  at::Tensor q = project(x, w.q, w.q_bias), k = project(x, w.k, w.k_bias);
  at::Tensor v = project(x, w.v, w.v_bias);
  if (d.qk_norm_whole) {  // OLMoE: the norm spans the whole projection, before any clip
    q = rms_norm(q, w.q_norm, d.rms_eps);
    k = rms_norm(k, w.k_norm, d.rms_eps);
  }
  if (d.clip_qkv > 0) {
    q = q.clamp(-d.clip_qkv, d.clip_qkv);
    k = k.clamp(-d.clip_qkv, d.clip_qkv);
    v = v.clamp(-d.clip_qkv, d.clip_qkv);
  }
  q = q.view({B, T, d.heads, D});
  k = k.view({B, T, d.kv_heads, D});
  v = v.view({B, T, d.kv_heads, D});
  if (w.q_norm.defined() && !d.qk_norm_whole) {
    q = rms_norm(q, w.q_norm, d.rms_eps);
    k = rms_norm(k, w.k_norm, d.rms_eps);
  }
  q = q.transpose(1, 2);  // [B, heads, T, D]
  k = k.transpose(1, 2);
  v = v.transpose(1, 2);
  // RoPE on the first R dims of each head (a partial rotary factor leaves the rest as it is).
  auto rotate = [&](const at::Tensor& t) {
    if (R == D) return apply_rope(t, rope, d.rope.interleaved);
    return at::cat(
        {apply_rope(t.narrow(-1, 0, R), rope, d.rope.interleaved), t.narrow(-1, R, D - R)}, -1);
  };
  q = rotate(q);
  k = hooks.cache(true, rotate(k));  // what the KV cache holds
  v = hooks.cache(false, v);
  const int64_t groups = d.heads / d.kv_heads;
  if (groups > 1) {  // grouped-query attention: each key/value head serves `groups` query heads
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
  const at::Tensor out =  // [B, heads, T, D]
      w.sinks.defined() || w.window > 0
          ? windowed_attention_with_sinks(q, k, v, d.softmax_scale, w.sinks, w.window)
          : causal_attention(q, k, v, d.softmax_scale);
  return project(hooks.input(TensorUse::kO, out.transpose(1, 2).reshape({B, T, d.heads * D})), w.o,
                 w.o_bias);
}

// DeepSeek-V3's latent attention (transformers' DeepseekV3Attention): q from a low-rank
// projection (or q_proj), k and v from a compressed kv with one shared RoPE key part.
at::Tensor mla_attention(const at::Tensor& x_in, const AttentionWeights& w, const DecoderConfig& d,
                         const RopeTable& rope, const ForwardHooks& hooks) {
  const MlaSizes& m = d.mla;
  const int64_t B = x_in.size(0), T = x_in.size(1), n = d.heads;
  const int64_t dn = m.qk_nope_head_dim, dr = m.qk_rope_head_dim, dv = m.v_head_dim;
  // The latent norms are built with transformers' default eps, not rms_norm_eps.
  constexpr double kLatentEps = 1e-6;
  // q_a and kv_a (fused by the engines) share their input; without q_lora_rank q_proj reads it.
  const at::Tensor x = hooks.input(m.q_lora_rank > 0 ? TensorUse::kQA : TensorUse::kQ, x_in);
  const at::Tensor x_kv = m.q_lora_rank > 0 ? x : hooks.input(TensorUse::kQA, x_in);
  const at::Tensor q_flat =
      m.q_lora_rank > 0
          ? at::linear(
                hooks.input(TensorUse::kQB, rms_norm(at::linear(x, w.q_a), w.q_a_norm, kLatentEps)),
                w.q_b)
          : at::linear(x, w.q);
  const at::Tensor q = q_flat.view({B, T, n, dn + dr}).transpose(1, 2);  // [B, n, T, dn + dr]
  const at::Tensor compressed = at::linear(x_kv, w.kv_a);                // [B, T, kv_lora + dr]
  const at::Tensor kv =
      at::linear(hooks.input(TensorUse::kKVB, rms_norm(compressed.narrow(-1, 0, m.kv_lora_rank),
                                                       w.kv_a_norm, kLatentEps)),
                 w.kv_b)
          .view({B, T, n, dn + dv})
          .transpose(1, 2);  // [B, n, T, dn + dv]
  const at::Tensor k_rot =
      apply_rope(compressed.narrow(-1, m.kv_lora_rank, dr).reshape({B, 1, T, dr}), rope,
                 d.rope.interleaved)
          .expand({B, n, T, dr});
  const at::Tensor query = at::cat(
      {q.narrow(-1, 0, dn), apply_rope(q.narrow(-1, dn, dr), rope, d.rope.interleaved)}, -1);
  const at::Tensor key = at::cat({kv.narrow(-1, 0, dn), k_rot}, -1);
  const at::Tensor out = causal_attention(query, key, kv.narrow(-1, dn, dv), d.softmax_scale);
  return at::linear(hooks.input(TensorUse::kO, out.transpose(1, 2).reshape({B, T, n * dv})), w.o);
}

Routing softmax_topk(const at::Tensor& logits, const DecoderConfig& d) {
  const at::Tensor probs = at::softmax(logits, -1);
  auto [weights, experts] = at::topk(probs, d.top_k, -1);
  if (d.normalize_topk) weights = weights / weights.sum(-1, /*keepdim=*/true);
  return {experts, weights};
}

// transformers' DeepseekV3TopkRouter / Glm4MoeTopkRouter: sigmoid scores; the correction bias
// takes part in the choice only; each group scored by its two best experts, the best topk_group
// groups kept (the others' scores set to 0, not -inf, as there), the top k of what is left;
// weights are the unbiased scores, renormalized (+1e-20) when asked, times the scaling factor.
Routing sigmoid_grouped_topk(const at::Tensor& logits, const at::Tensor& bias,
                             const DecoderConfig& d) {
  const int64_t N = logits.size(0), E = logits.size(1), per_group = E / d.n_group;
  const at::Tensor scores = at::sigmoid(logits);
  at::Tensor choice = bias.defined() ? scores + bias.unsqueeze(0) : scores;
  const at::Tensor group_scores =
      std::get<0>(choice.view({N, d.n_group, per_group}).topk(2, -1)).sum(-1);  // [N, groups]
  const at::Tensor kept = std::get<1>(group_scores.topk(d.topk_group, -1, true, false));
  const at::Tensor group_mask = at::zeros_like(group_scores).scatter_(1, kept, 1.0);
  const at::Tensor score_mask =
      group_mask.unsqueeze(-1).expand({N, d.n_group, per_group}).reshape({N, E});
  choice = choice.masked_fill(score_mask.logical_not(), 0.0);
  const at::Tensor experts = std::get<1>(choice.topk(d.top_k, -1, true, false));
  at::Tensor weights = scores.gather(1, experts);
  if (d.normalize_topk) weights = weights / (weights.sum(-1, /*keepdim=*/true) + 1e-20);
  return {experts, weights * d.routed_scaling};
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor variance = x.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x * at::rsqrt(variance + eps));
}

at::Tensor rope_inv_freq(const RopeSettings& r, const at::Device& device) {
  const at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  // As transformers: theta^(arange(0, dim, 2) / dim) in float32.
  const at::Tensor exponent =
      at::arange(0, r.dim, 2, at::TensorOptions().dtype(at::kLong).device(device)).to(at::kFloat) /
      static_cast<double>(r.dim);
  const at::Tensor pos_freqs = at::pow(at::scalar_tensor(r.theta, f32), exponent);
  if (r.yarn_factor <= 0) return 1.0 / pos_freqs;
  // YaRN (transformers' _compute_yarn_parameters): extrapolated frequencies for the fast
  // dimensions, interpolated (divided by the factor) for the slow ones, a linear ramp between.
  const double dim = static_cast<double>(r.dim);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(r.yarn_original_max_positions / (rotations * 2 * kPi)) /
           (2 * std::log(r.theta));
  };
  double low = correction_dim(r.yarn_beta_fast), high = correction_dim(r.yarn_beta_slow);
  if (r.yarn_truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1);
  if (low == high) high += 0.001;  // no singularity
  const at::Tensor ramp = at::clamp((at::arange(r.dim / 2, f32) - low) / (high - low), 0, 1);
  const at::Tensor extrapolation = 1 - ramp;
  const at::Tensor inv_extrapolated = 1.0 / pos_freqs;
  const at::Tensor inv_interpolated = 1.0 / (r.yarn_factor * pos_freqs);
  return inv_interpolated * (1 - extrapolation) + inv_extrapolated * extrapolation;
}

RopeTable rope_table(int64_t seq_len, const RopeSettings& r, const at::Device& device) {
  const at::Tensor positions =
      at::arange(seq_len, at::TensorOptions().dtype(at::kFloat).device(device));
  const at::Tensor freqs = at::outer(positions, rope_inv_freq(r, device));
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  if (r.attention_factor == 1.0) return {emb.cos(), emb.sin()};
  return {emb.cos() * r.attention_factor, emb.sin() * r.attention_factor};
}

at::Tensor attention(const at::Tensor& x, const AttentionWeights& w, const DecoderConfig& d,
                     const RopeTable& rope, const ForwardHooks& hooks) {
  return d.attention == AttentionKind::kMla ? mla_attention(x, w, d, rope, hooks)
                                            : gqa_attention(x, w, d, rope, hooks);
}

Routing route(const at::Tensor& x, const at::Tensor& router, const at::Tensor& router_bias,
              const DecoderConfig& d) {
  const at::Tensor logits = at::linear(x, router);
  switch (d.router) {
    case RouterKind::kSoftmaxTopK:
      return softmax_topk(logits, d);
    case RouterKind::kSigmoidGroupedTopK:
      return sigmoid_grouped_topk(logits, router_bias, d);
    case RouterKind::kTopKSoftmax:  // GPT-OSS: router_bias is the linear's own bias
      return topk_then_softmax(logits + router_bias, d);
    case RouterKind::kSigmoidTopK:
      break;  // Llama-4: refused before any forward runs (forward_support.h)
  }
  MQ_THROW("internal: unknown router kind");
}

at::Tensor swiglu(const at::Tensor& x_in, const SwiGluWeights& w, const ForwardHooks& hooks,
                  TensorUse gate_use, TensorUse down_use) {
  const at::Tensor x = hooks.input(gate_use, x_in);  // gate and up share their input
  const at::Tensor h = at::silu(at::linear(x, w.gate)) * at::linear(x, w.up);
  return at::linear(hooks.input(down_use, h), w.down);
}

at::Tensor swiglu(const at::Tensor& x, const SwiGluWeights& w, at::Tensor* hidden) {
  at::Tensor h = expert_hidden(x, w);
  at::Tensor out = expert_down(h, w);
  if (hidden) *hidden = std::move(h);
  return out;
}

}  // namespace moequant
