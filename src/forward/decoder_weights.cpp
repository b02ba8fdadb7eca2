#include "moequant/forward/decoder_weights.h"

#include <ATen/ATen.h>

#include "moequant/common/error.h"
#include "moequant/forward/expert_storage.h"
#include "moequant/forward/forward_support.h"
#include "moequant/forward/gpt_oss_ops.h"
#include "moequant/model/model_tensors.h"

namespace moequant {

namespace {

// Where a tensor of each use goes in a layer's weights (nullptr: the forward does not read it).
at::Tensor* slot_of(DecoderLayerWeights& w, TensorUse use) {
  AttentionWeights& a = w.attention;
  switch (use) {
    case TensorUse::kInputNorm:
      return &w.input_norm;
    case TensorUse::kPostAttentionNorm:
      return &w.post_attention_norm;
    case TensorUse::kQ:
      return &a.q;
    case TensorUse::kK:
      return &a.k;
    case TensorUse::kV:
      return &a.v;
    case TensorUse::kO:
      return &a.o;
    case TensorUse::kQBias:
      return &a.q_bias;
    case TensorUse::kKBias:
      return &a.k_bias;
    case TensorUse::kVBias:
      return &a.v_bias;
    case TensorUse::kOBias:
      return &a.o_bias;
    case TensorUse::kSinks:
      return &a.sinks;
    case TensorUse::kRouterLinearBias:  // a family has this or a correction bias, never both
      return &w.router_bias;
    case TensorUse::kQNorm:
      return &a.q_norm;
    case TensorUse::kKNorm:
      return &a.k_norm;
    case TensorUse::kQA:
      return &a.q_a;
    case TensorUse::kQANorm:
      return &a.q_a_norm;
    case TensorUse::kQB:
      return &a.q_b;
    case TensorUse::kKVA:
      return &a.kv_a;
    case TensorUse::kKVANorm:
      return &a.kv_a_norm;
    case TensorUse::kKVB:
      return &a.kv_b;
    case TensorUse::kRouter:
      return &w.router;
    case TensorUse::kRouterBias:
      return &w.router_bias;
    case TensorUse::kSharedGate:
      return &w.shared_expert.gate;
    case TensorUse::kSharedUp:
      return &w.shared_expert.up;
    case TensorUse::kSharedDown:
      return &w.shared_expert.down;
    case TensorUse::kSharedExpertGate:
      return &w.shared_expert_gate;
    case TensorUse::kDenseGate:
      return &w.dense_mlp.gate;
    case TensorUse::kDenseUp:
      return &w.dense_mlp.up;
    case TensorUse::kDenseDown:
      return &w.dense_mlp.down;
    default:
      return nullptr;
  }
}

}  // namespace

DecoderLayerWeights read_layer_weights(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                                       const DecoderConfig& d, int layer, const at::Device& device,
                                       const LinearReader& read_linear) {
  MQ_CHECK(layer < config.num_layers, "internal: the forward runs decoder layers only, not ",
           layer);
  check_forward_supports(config, d, "the forward");
  DecoderLayerWeights w;
  const TensorSet tensors = layer_tensors(config, d, layer);
  for (const ModelTensor& t : tensors.all()) {
    at::Tensor* slot = slot_of(w, t.use);
    if (!slot) continue;
    if (t.linear && read_linear) *slot = read_linear(t);
    if (!slot->defined()) *slot = read_f32(ckpt, t.name, device, t.shape);
  }
  if (d.mixer(layer) == LayerMixer::kSlidingAttention) w.attention.window = d.sliding_window;
  return w;
}

ModelEnds read_model_ends(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                          const DecoderConfig& d, const at::Device& device) {
  const TensorSet t = end_tensors(config, d);
  ModelEnds e;
  const ModelTensor& embed = t.get(TensorUse::kEmbed);
  e.embed = read_f32(ckpt, embed.name, device, embed.shape);
  const ModelTensor& norm = t.get(TensorUse::kFinalNorm);
  e.final_norm = read_f32(ckpt, norm.name, device, norm.shape);
  const ModelTensor* head = t.find(TensorUse::kLmHead);  // none with tie_word_embeddings
  e.lm_head = head ? read_f32(ckpt, head->name, device, head->shape) : e.embed;
  return e;
}

SwiGluWeights read_expert_weights(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                                  int layer, int expert, const at::Device& device) {
  const ExpertStorage storage(config, ckpt);
  const int64_t I = config.intermediate;
  const SwiGluWeights fc1 = storage.read(layer, expert, true, 0, I);
  const SwiGluWeights fc2 = storage.read(layer, expert, false, 0, I);
  SwiGluWeights w;
  w.gate = to_f32(fc1.gate, device);
  w.up = to_f32(fc1.up, device);
  w.down = to_f32(fc2.down, device);
  add_expert_extras(w, ckpt, config, decoder_config(config), layer, expert, 0, I, true, device);
  // Copied: the mapped pages of a per-expert source need not stay in this process's memory.
  for (bool f : {true, false})
    for (const io::TensorSpan& span : storage.unit_spans(layer, expert, f)) ckpt.release(span);
  return w;
}

}  // namespace moequant
