#include "moequant/forward/decoder_forward.h"

#include <ATen/ATen.h>

#include "moequant/common/error.h"

namespace moequant {

at::Tensor attention_block(const at::Tensor& h, const DecoderLayerWeights& w,
                           const DecoderConfig& d, const RopeTable& rope,
                           const ForwardHooks& hooks) {
  return h + attention(rms_norm(h, w.input_norm, d.rms_eps), w.attention, d, rope, hooks);
}

at::Tensor mlp_block(const at::Tensor& attended, const DecoderLayerWeights& w,
                     const DecoderConfig& d, ExpertRunner* experts, const ForwardHooks& hooks) {
  const at::Tensor x = rms_norm(attended, w.post_attention_norm, d.rms_eps).reshape({-1, d.hidden});
  const at::Tensor mlp = w.router.defined() ? moe_block(x, w, d, *experts, hooks)
                                            : swiglu(x, w.dense_mlp, hooks, TensorUse::kDenseGate,
                                                     TensorUse::kDenseDown);
  return attended + mlp.view(attended.sizes());
}

at::Tensor decoder_layer(const at::Tensor& h, const DecoderLayerWeights& w, const DecoderConfig& d,
                         const RopeTable& rope, ExpertRunner* experts, const ForwardHooks& hooks) {
  return mlp_block(attention_block(h, w, d, rope, hooks), w, d, experts, hooks);
}

at::Tensor output_logits(const at::Tensor& h, const ModelEnds& ends, const DecoderConfig& d) {
  return at::linear(rms_norm(h, ends.final_norm, d.rms_eps), ends.lm_head);
}

at::Tensor embed_tokens(const at::Tensor& ids, const ModelEnds& ends, const DecoderConfig& d) {
  MQ_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong, "token ids must be int64 [B, T]");
  if (ids.numel() > 0) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    MQ_CHECK(lo >= 0 && hi < d.vocab, "token id ", lo < 0 ? lo : hi,
             " is outside the vocabulary of ", d.vocab, " tokens");
  }
  return at::embedding(ends.embed, ids.to(ends.embed.device()));
}

at::Tensor forward_logits(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                          const at::Tensor& ids, const at::Device& device) {
  const DecoderConfig d = decoder_config(config);
  const ModelEnds ends = read_model_ends(ckpt, config, d, device);
  const RopeTable rope = rope_table(ids.size(1), d.rope, device);
  at::Tensor h = embed_tokens(ids, ends, d);
  for (int layer = 0; layer < config.num_layers; ++layer) {
    const DecoderLayerWeights w = read_layer_weights(ckpt, config, d, layer, device);
    std::map<int, SwiGluWeights> experts;
    if (config.is_moe_layer(layer))
      for (int e = 0; e < config.num_experts; ++e)
        experts.emplace(e, read_expert_weights(ckpt, config, layer, e, device));
    LocalExperts runner(std::move(experts));
    h = decoder_layer(h, w, d, rope, &runner);
  }
  return output_logits(h, ends, d);
}

}  // namespace moequant
