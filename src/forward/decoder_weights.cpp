#include "moequant/forward/decoder_weights.h"

#include <ATen/ATen.h>

#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/core/tensor_bridge.h"

namespace moequant {

namespace {

// A view of (part of) a mapped tensor, copied to `device` in its own dtype, then widened there
// (a bf16 weight crosses PCIe at half the bytes); always a copy, never an alias of the mapping.
at::Tensor to_f32(const at::Tensor& view, const at::Device& device) {
  return view.to(device).to(at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

at::Tensor mapped_view(const io::CheckpointFolder& ckpt, const std::string& name) {
  const io::TensorInfo& info = ckpt.info(name);
  const at::ScalarType t = weight_scalar_type(info.dtype, ckpt.dir() + ": " + name);
  return at::from_blob(const_cast<uint8_t*>(ckpt.data(name)), info.shape,
                       at::TensorOptions().dtype(t));
}

}  // namespace

at::Tensor read_f32(const io::CheckpointFolder& ckpt, const std::string& name,
                    const at::Device& device, const std::vector<int64_t>& shape) {
  MQ_CHECK(ckpt.has(name), ckpt.dir(), ": tensor '", name, "' is missing (the forward needs it)");
  const io::TensorInfo& info = ckpt.info(name);
  MQ_CHECK(shape.empty() || info.shape == shape, ckpt.dir(), ": tensor '", name, "' has shape ",
           shape_string(info.shape), ", the forward expects ", shape_string(shape));
  at::Tensor out = to_f32(mapped_view(ckpt, name), device);
  ckpt.release(name);  // streamed: the copy is what the forward keeps
  return out;
}

DecoderLayerWeights read_layer_weights(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                                       const DecoderConfig& d, int layer,
                                       const at::Device& device) {
  const std::string p = ModelConfig::layer_prefix(layer);
  const int64_t H = d.hidden, D = d.head_dim, q = d.heads * D, kv = d.kv_heads * D;
  DecoderLayerWeights w;
  w.input_norm = read_f32(ckpt, p + "input_layernorm.weight", device, {H});
  w.post_attention_norm = read_f32(ckpt, p + "post_attention_layernorm.weight", device, {H});
  AttentionWeights& a = w.attention;
  a.q = read_f32(ckpt, p + "self_attn.q_proj.weight", device, {q, H});
  a.k = read_f32(ckpt, p + "self_attn.k_proj.weight", device, {kv, H});
  a.v = read_f32(ckpt, p + "self_attn.v_proj.weight", device, {kv, H});
  a.o = read_f32(ckpt, p + "self_attn.o_proj.weight", device, {H, q});
  if (d.qkv_bias) {
    a.q_bias = read_f32(ckpt, p + "self_attn.q_proj.bias", device, {q});
    a.k_bias = read_f32(ckpt, p + "self_attn.k_proj.bias", device, {kv});
    a.v_bias = read_f32(ckpt, p + "self_attn.v_proj.bias", device, {kv});
  }
  if (d.qk_norm) {
    a.q_norm = read_f32(ckpt, p + "self_attn.q_norm.weight", device, {D});
    a.k_norm = read_f32(ckpt, p + "self_attn.k_norm.weight", device, {D});
  }
  if (!config.is_moe_layer(layer)) {
    const std::string m = p + "mlp.";
    w.dense_mlp.gate = read_f32(ckpt, m + "gate_proj.weight", device);
    w.dense_mlp.up = read_f32(ckpt, m + "up_proj.weight", device);
    w.dense_mlp.down = read_f32(ckpt, m + "down_proj.weight", device);
    return w;
  }
  w.router =
      read_f32(ckpt, config.router_module(layer) + ".weight", device, {config.num_experts, H});
  if (d.shared_expert) {
    const std::string s = config.family->shared_expert(layer) + ".";
    w.shared_expert.gate = read_f32(ckpt, s + "gate_proj.weight", device);
    w.shared_expert.up = read_f32(ckpt, s + "up_proj.weight", device);
    w.shared_expert.down = read_f32(ckpt, s + "down_proj.weight", device);
    w.shared_expert_gate =
        read_f32(ckpt, config.family->shared_expert_gate(layer) + ".weight", device, {1, H});
  }
  return w;
}

ModelEnds read_model_ends(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                          const DecoderConfig& d, const at::Device& device) {
  (void)config;
  ModelEnds e;
  e.embed = read_f32(ckpt, "model.embed_tokens.weight", device, {d.vocab, d.hidden});
  e.final_norm = read_f32(ckpt, "model.norm.weight", device, {d.hidden});
  e.lm_head = d.tie_word_embeddings || !ckpt.has("lm_head.weight")
                  ? e.embed
                  : read_f32(ckpt, "lm_head.weight", device, {d.vocab, d.hidden});
  return e;
}

SwiGluWeights read_expert_weights(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                                  int layer, int expert, const at::Device& device) {
  const int64_t I = config.intermediate;
  SwiGluWeights w;
  if (ckpt.has(config.fused_gate_up_name(layer))) {
    const at::Tensor gate_up = mapped_view(ckpt, config.fused_gate_up_name(layer))[expert];
    w.gate = to_f32(gate_up.narrow(0, 0, I), device);
    w.up = to_f32(gate_up.narrow(0, I, I), device);
    w.down = to_f32(mapped_view(ckpt, config.fused_down_name(layer))[expert], device);
    return w;
  }
  w.gate = read_f32(ckpt, config.expert_weight_name(layer, expert, ExpertProj::kGate), device);
  w.up = read_f32(ckpt, config.expert_weight_name(layer, expert, ExpertProj::kUp), device);
  w.down = read_f32(ckpt, config.expert_weight_name(layer, expert, ExpertProj::kDown), device);
  return w;
}

}  // namespace moequant
