#include "moequant/model/model_tensors.h"

#include <algorithm>

#include "moequant/common/error.h"

namespace moequant {

namespace {

// Gated DeltaNet's tensors (Qwen3-Next's fused input projections, or Qwen3.5's split ones).
void delta_net_tensors(TensorSet& t, const DecoderConfig& d, const std::string& a) {
  const DeltaNetSizes& n = d.delta_net;
  const int64_t H = d.hidden, k = n.key_dim(), v = n.value_dim();
  if (n.split_projections) {
    t.add(TensorUse::kLinearQkv, a + "in_proj_qkv.weight", {2 * k + v, H}, true);
    t.add(TensorUse::kLinearZ, a + "in_proj_z.weight", {v, H}, true);
    t.add(TensorUse::kLinearB, a + "in_proj_b.weight", {n.value_heads, H}, true);
    t.add(TensorUse::kLinearA, a + "in_proj_a.weight", {n.value_heads, H}, true);
  } else {
    t.add(TensorUse::kLinearQkvz, a + "in_proj_qkvz.weight", {2 * k + 2 * v, H}, true);
    t.add(TensorUse::kLinearBa, a + "in_proj_ba.weight", {2 * n.value_heads, H}, true);
  }
  t.add(TensorUse::kLinearConv, a + "conv1d.weight", {2 * k + v, 1, n.conv_kernel});
  t.add(TensorUse::kLinearALog, a + "A_log", {n.value_heads});
  t.add(TensorUse::kLinearDtBias, a + "dt_bias", {n.value_heads});
  t.add(TensorUse::kLinearNorm, a + "norm.weight", {n.value_head_dim});
  t.add(TensorUse::kLinearOut, a + "out_proj.weight", {H, v}, true);
}

void attention_tensors(TensorSet& t, const DecoderConfig& d, const std::string& a) {
  const int64_t H = d.hidden;
  if (d.attention == AttentionKind::kGqa) {
    const int64_t D = d.head_dim, q = d.heads * D, kv = d.kv_heads * D;
    t.add(TensorUse::kQ, a + "q_proj.weight", {d.gated_query ? 2 * q : q, H}, true);
    t.add(TensorUse::kK, a + "k_proj.weight", {kv, H}, true);
    t.add(TensorUse::kV, a + "v_proj.weight", {kv, H}, true);
    t.add(TensorUse::kO, a + "o_proj.weight", {H, q}, true);
    if (d.qkv_bias) {
      t.add(TensorUse::kQBias, a + "q_proj.bias", {q});
      t.add(TensorUse::kKBias, a + "k_proj.bias", {kv});
      t.add(TensorUse::kVBias, a + "v_proj.bias", {kv});
    }
    if (d.o_bias) t.add(TensorUse::kOBias, a + "o_proj.bias", {H});
    if (d.qk_norm) {  // per head, or (OLMoE) over the whole projection
      t.add(TensorUse::kQNorm, a + "q_norm.weight", {d.qk_norm_whole ? q : D});
      t.add(TensorUse::kKNorm, a + "k_norm.weight", {d.qk_norm_whole ? kv : D});
    }
    if (d.sinks) t.add(TensorUse::kSinks, a + "sinks", {d.heads});
    return;
  }
  const MlaSizes& m = d.mla;
  const int64_t qk = d.heads * m.qk_head_dim();
  if (m.q_lora_rank > 0) {
    t.add(TensorUse::kQA, a + "q_a_proj.weight", {m.q_lora_rank, H}, true);
    t.add(TensorUse::kQANorm, a + "q_a_layernorm.weight", {m.q_lora_rank});
    t.add(TensorUse::kQB, a + "q_b_proj.weight", {qk, m.q_lora_rank}, true);
  } else {
    t.add(TensorUse::kQ, a + "q_proj.weight", {qk, H}, true);
  }
  t.add(TensorUse::kKVA, a + "kv_a_proj_with_mqa.weight", {m.kv_lora_rank + m.qk_rope_head_dim, H},
        true);
  t.add(TensorUse::kKVANorm, a + "kv_a_layernorm.weight", {m.kv_lora_rank});
  t.add(TensorUse::kKVB, a + "kv_b_proj.weight",
        {d.heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank}, true);
  t.add(TensorUse::kO, a + "o_proj.weight", {H, d.heads * m.v_head_dim}, true);
}

void moe_tensors(TensorSet& t, const ModelConfig& c, const DecoderConfig& d, int layer) {
  const int64_t H = d.hidden, E = c.num_experts;
  const std::string router = c.router_module(layer);
  t.add(TensorUse::kRouter, router + ".weight", {E, H}, true);
  if (d.router_bias) t.add(TensorUse::kRouterBias, router + ".e_score_correction_bias", {E});
  if (d.router_linear_bias) t.add(TensorUse::kRouterLinearBias, router + ".bias", {E});
  if (d.expert_bias) {  // carried over beside the experts, in the layout on disk
    const std::string e = c.experts_prefix(layer);
    t.add(TensorUse::kExpertGateUpBias, e + ".gate_up_proj_bias", {E, 2 * c.intermediate});
    t.add(TensorUse::kExpertDownBias, e + ".down_proj_bias", {E, H});
  }
  if (d.shared_intermediate > 0) {
    const int64_t S = d.shared_intermediate;
    const std::string s = c.family->shared_expert(layer) + ".";
    MQ_CHECK(s.size() > 1, "internal: ", c.model_type, " has a shared expert but no name for it");
    t.add(TensorUse::kSharedGate, s + "gate_proj.weight", {S, H}, true);
    t.add(TensorUse::kSharedUp, s + "up_proj.weight", {S, H}, true);
    t.add(TensorUse::kSharedDown, s + "down_proj.weight", {H, S}, true);
    if (d.shared_expert_gate)
      t.add(TensorUse::kSharedExpertGate, c.family->shared_expert_gate(layer) + ".weight", {1, H},
            true);
  }
}

void dense_mlp_tensors(TensorSet& t, const DecoderConfig& d, const std::string& mlp) {
  const int64_t H = d.hidden, I = d.dense_intermediate;
  t.add(TensorUse::kDenseGate, mlp + ".gate_proj.weight", {I, H}, true);
  t.add(TensorUse::kDenseUp, mlp + ".up_proj.weight", {I, H}, true);
  t.add(TensorUse::kDenseDown, mlp + ".down_proj.weight", {H, I}, true);
}

}  // namespace

void TensorSet::add(TensorUse use, std::string name, std::vector<int64_t> shape, bool linear) {
  tensors_.push_back({use, std::move(name), std::move(shape), linear});
}

const ModelTensor* TensorSet::find(TensorUse use) const {
  for (const ModelTensor& t : tensors_)
    if (t.use == use) return &t;
  return nullptr;
}

const ModelTensor& TensorSet::get(TensorUse use) const {
  const ModelTensor* t = find(use);
  MQ_CHECK(t != nullptr, "internal: no ", use_name(use), " tensor here");
  return *t;
}

TensorSet layer_tensors(const ModelConfig& c, const DecoderConfig& d, int layer) {
  MQ_CHECK(c.holds_layer(layer), "internal: layer ", layer, " is outside the model");
  const std::string p = c.layer_prefix(layer);
  const int64_t H = d.hidden;
  TensorSet t;
  t.add(TensorUse::kInputNorm, p + "input_layernorm.weight", {H});
  t.add(TensorUse::kPostAttentionNorm, p + "post_attention_layernorm.weight", {H});
  // An extra (MTP) layer attends as the last decoder layer does.
  if (d.mixer(std::min(layer, c.num_layers - 1)) == LayerMixer::kGatedDeltaNet)
    delta_net_tensors(t, d, p + "linear_attn.");
  else
    attention_tensors(t, d, p + "self_attn.");
  // An extra (MTP) layer's block is a MoE one when the decoder's last layer is.
  const bool moe = layer < c.num_layers ? c.is_moe_layer(layer) : c.is_moe_layer(c.num_layers - 1);
  if (moe)
    moe_tensors(t, c, d, layer);
  else
    dense_mlp_tensors(t, d, c.dense_mlp(layer));
  if (layer >= c.num_layers) {  // DeepSeek's multi-token-prediction module around the layer
    t.add(TensorUse::kMtpEmbed, p + "embed_tokens.weight", {d.vocab, H});
    t.add(TensorUse::kMtpEnorm, p + "enorm.weight", {H});
    t.add(TensorUse::kMtpHnorm, p + "hnorm.weight", {H});
    t.add(TensorUse::kMtpEhProj, p + "eh_proj.weight", {H, 2 * H}, true);
    t.add(TensorUse::kMtpHeadNorm, p + "shared_head.norm.weight", {H});
    t.add(TensorUse::kMtpHead, p + "shared_head.head.weight", {d.vocab, H}, true);
  }
  return t;
}

TensorSet end_tensors(const ModelConfig& c, const DecoderConfig& d) {
  TensorSet t;
  t.add(TensorUse::kEmbed, c.text_root() + "embed_tokens.weight", {d.vocab, d.hidden});
  t.add(TensorUse::kFinalNorm, c.text_root() + "norm.weight", {d.hidden});
  if (!d.tie_word_embeddings)
    t.add(TensorUse::kLmHead, "lm_head.weight", {d.vocab, d.hidden}, true);
  return t;
}

bool quantizable_dense_linear(TensorUse use) {
  switch (use) {
    case TensorUse::kQ:
    case TensorUse::kK:
    case TensorUse::kV:
    case TensorUse::kO:
    case TensorUse::kQA:
    case TensorUse::kQB:
    case TensorUse::kKVA:
    case TensorUse::kKVB:
    case TensorUse::kSharedGate:
    case TensorUse::kSharedUp:
    case TensorUse::kSharedDown:
    case TensorUse::kDenseGate:
    case TensorUse::kDenseUp:
    case TensorUse::kDenseDown:
      return true;
    default:
      return false;
  }
}

TpSplit tp_split(TensorUse use) {
  switch (use) {
    case TensorUse::kQ:
    case TensorUse::kK:
    case TensorUse::kV:
    case TensorUse::kQB:
    case TensorUse::kKVB:
    case TensorUse::kSharedGate:
    case TensorUse::kSharedUp:
    case TensorUse::kDenseGate:
    case TensorUse::kDenseUp:
      return TpSplit::kColumn;
    case TensorUse::kO:
    case TensorUse::kSharedDown:
    case TensorUse::kDenseDown:
      return TpSplit::kRow;
    default:
      return TpSplit::kNone;
  }
}

TensorUse fusion_group(TensorUse use) {
  switch (use) {
    case TensorUse::kK:
    case TensorUse::kV:
      return TensorUse::kQ;
    case TensorUse::kKVA:
      return TensorUse::kQA;
    case TensorUse::kSharedUp:
      return TensorUse::kSharedGate;
    case TensorUse::kDenseUp:
      return TensorUse::kDenseGate;
    default:
      return use;
  }
}

std::vector<DenseLinear> dense_linears(const ModelConfig& c, const DecoderConfig& d) {
  std::vector<DenseLinear> out;
  const std::string weight = ".weight";
  for (int layer = 0; layer < c.num_layers; ++layer) {
    const TensorSet tensors = layer_tensors(c, d, layer);
    for (const ModelTensor& t : tensors.all()) {
      if (!t.linear || !quantizable_dense_linear(t.use)) continue;
      DenseLinear l;
      l.layer = layer;
      l.use = t.use;
      l.group = fusion_group(t.use);
      l.weight = t.name;
      l.module = t.name.substr(0, t.name.size() - weight.size());
      l.shape = t.shape;
      l.split = tp_split(t.use);
      out.push_back(std::move(l));
    }
  }
  return out;
}

std::vector<const DenseLinear*> fusion_members(const std::vector<DenseLinear>& all, int layer,
                                               TensorUse group) {
  std::vector<const DenseLinear*> out;
  for (const DenseLinear& l : all)
    if (l.layer == layer && l.group == group) out.push_back(&l);
  return out;
}

const char* use_name(TensorUse use) {
  switch (use) {
    case TensorUse::kEmbed:
      return "embed_tokens";
    case TensorUse::kFinalNorm:
      return "norm";
    case TensorUse::kLmHead:
      return "lm_head";
    case TensorUse::kInputNorm:
      return "input_layernorm";
    case TensorUse::kPostAttentionNorm:
      return "post_attention_layernorm";
    case TensorUse::kQ:
      return "q_proj";
    case TensorUse::kK:
      return "k_proj";
    case TensorUse::kV:
      return "v_proj";
    case TensorUse::kO:
      return "o_proj";
    case TensorUse::kQBias:
      return "q_proj.bias";
    case TensorUse::kKBias:
      return "k_proj.bias";
    case TensorUse::kVBias:
      return "v_proj.bias";
    case TensorUse::kOBias:
      return "o_proj.bias";
    case TensorUse::kSinks:
      return "attention sinks";
    case TensorUse::kLinearQkvz:
      return "linear_attn.in_proj_qkvz";
    case TensorUse::kLinearBa:
      return "linear_attn.in_proj_ba";
    case TensorUse::kLinearQkv:
      return "linear_attn.in_proj_qkv";
    case TensorUse::kLinearZ:
      return "linear_attn.in_proj_z";
    case TensorUse::kLinearB:
      return "linear_attn.in_proj_b";
    case TensorUse::kLinearA:
      return "linear_attn.in_proj_a";
    case TensorUse::kLinearConv:
      return "linear_attn.conv1d";
    case TensorUse::kLinearALog:
      return "linear_attn.A_log";
    case TensorUse::kLinearDtBias:
      return "linear_attn.dt_bias";
    case TensorUse::kLinearNorm:
      return "linear_attn.norm";
    case TensorUse::kLinearOut:
      return "linear_attn.out_proj";
    case TensorUse::kRouterLinearBias:
      return "router bias";
    case TensorUse::kExpertGateUpBias:
      return "experts gate_up_proj_bias";
    case TensorUse::kExpertDownBias:
      return "experts down_proj_bias";
    case TensorUse::kQNorm:
      return "q_norm";
    case TensorUse::kKNorm:
      return "k_norm";
    case TensorUse::kQA:
      return "q_a_proj";
    case TensorUse::kQANorm:
      return "q_a_layernorm";
    case TensorUse::kQB:
      return "q_b_proj";
    case TensorUse::kKVA:
      return "kv_a_proj_with_mqa";
    case TensorUse::kKVANorm:
      return "kv_a_layernorm";
    case TensorUse::kKVB:
      return "kv_b_proj";
    case TensorUse::kRouter:
      return "router";
    case TensorUse::kRouterBias:
      return "router correction bias";
    case TensorUse::kSharedGate:
      return "shared expert gate_proj";
    case TensorUse::kSharedUp:
      return "shared expert up_proj";
    case TensorUse::kSharedDown:
      return "shared expert down_proj";
    case TensorUse::kSharedExpertGate:
      return "shared expert gate";
    case TensorUse::kDenseGate:
      return "dense gate_proj";
    case TensorUse::kDenseUp:
      return "dense up_proj";
    case TensorUse::kDenseDown:
      return "dense down_proj";
    case TensorUse::kMtpEmbed:
      return "MTP embed_tokens";
    case TensorUse::kMtpEnorm:
      return "MTP enorm";
    case TensorUse::kMtpHnorm:
      return "MTP hnorm";
    case TensorUse::kMtpEhProj:
      return "MTP eh_proj";
    case TensorUse::kMtpHeadNorm:
      return "MTP shared_head.norm";
    case TensorUse::kMtpHead:
      return "MTP shared_head.head";
  }
  return "?";
}

}  // namespace moequant
