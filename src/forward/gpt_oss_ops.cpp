#include "moequant/forward/gpt_oss_ops.h"

#include <ATen/ATen.h>

#include <limits>

#include "moequant/common/error.h"
#include "moequant/forward/checkpoint_tensor.h"
#include "moequant/model/model_tensors.h"

namespace moequant {

at::Tensor windowed_attention_with_sinks(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, double scale, const at::Tensor& sinks,
                                         int64_t window) {
  const int64_t B = q.size(0), n = q.size(1), T = q.size(2);
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale;  // [B, n, T, T]
  const auto opts = at::TensorOptions().dtype(at::kLong).device(q.device());
  const at::Tensor i = at::arange(T, opts).unsqueeze(1), j = at::arange(T, opts).unsqueeze(0);
  // transformers' sliding-window mask: key j is seen from query i when i - window < j <= i.
  at::Tensor hidden = j > i;
  if (window > 0) hidden = hidden.logical_or(j <= i - window);
  scores = scores.masked_fill(hidden, -std::numeric_limits<float>::infinity());
  if (!sinks.defined()) return at::matmul(at::softmax(scores, -1), v);
  // The sink is one more logit per head; after the softmax its column is dropped.
  const at::Tensor sink = sinks.view({1, n, 1, 1}).expand({B, n, T, 1});
  at::Tensor combined = at::cat({scores, sink}, -1);
  combined = combined - std::get<0>(combined.max(-1, /*keepdim=*/true));
  const at::Tensor probs = at::softmax(combined, -1).narrow(-1, 0, T);
  return at::matmul(probs, v);
}

Routing topk_then_softmax(const at::Tensor& logits, const DecoderConfig& d) {
  auto [top, experts] = at::topk(logits, d.top_k, -1);
  return {experts, at::softmax(top, -1)};
}

at::Tensor expert_hidden(const at::Tensor& x, const SwiGluWeights& w) {
  if (w.clamp_limit <= 0) return at::silu(at::linear(x, w.gate)) * at::linear(x, w.up);
  const double limit = w.clamp_limit;
  const at::Tensor gate = at::linear(x, w.gate, w.gate_bias).clamp_max(limit);
  const at::Tensor up = at::linear(x, w.up, w.up_bias).clamp(-limit, limit);
  return (up + 1) * (gate * at::sigmoid(gate * w.clamp_alpha));
}

at::Tensor expert_down(const at::Tensor& h, const SwiGluWeights& w) {
  return w.down_bias.defined() ? at::linear(h, w.down, w.down_bias) : at::linear(h, w.down);
}

void add_expert_extras(SwiGluWeights& w, const io::CheckpointFolder& ckpt,
                       const ModelConfig& config, const DecoderConfig& d, int layer, int expert,
                       int64_t begin, int64_t end, bool down_bias, const at::Device& device) {
  if (d.activation == ExpertActivation::kClampedSwiGlu) {
    w.clamp_limit = d.activation_limit;
    w.clamp_alpha = d.activation_alpha;
  }
  if (!d.expert_bias) return;
  const TensorSet t = layer_tensors(config, d, layer);
  const ModelTensor& gate_up = t.get(TensorUse::kExpertGateUpBias);
  const at::Tensor gu = checkpoint_tensor(ckpt, gate_up.name, gate_up.shape)[expert];
  // [2I] in the experts' own order: interleaved (gate j at 2j) or gate half first.
  const int64_t I = config.intermediate, n = end - begin;
  const bool interleaved = config.family->fused_layout().interleaved;
  w.gate_bias =
      to_f32(interleaved ? gu.slice(0, 2 * begin, 2 * end, 2) : gu.narrow(0, begin, n), device);
  w.up_bias = to_f32(
      interleaved ? gu.slice(0, 2 * begin + 1, 2 * end, 2) : gu.narrow(0, I + begin, n), device);
  if (down_bias) {
    const ModelTensor& down = t.get(TensorUse::kExpertDownBias);
    w.down_bias = to_f32(checkpoint_tensor(ckpt, down.name, down.shape)[expert], device);
  }
}

}  // namespace moequant
