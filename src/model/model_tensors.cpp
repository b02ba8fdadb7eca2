#include "moequant/model/model_tensors.h"

#include "moequant/common/error.h"

namespace moequant {

namespace {

void attention_tensors(TensorSet& t, const DecoderConfig& d, const std::string& a) {
  const int64_t H = d.hidden;
  if (d.attention == AttentionKind::kGqa) {
    const int64_t D = d.head_dim, q = d.heads * D, kv = d.kv_heads * D;
    t.add(TensorUse::kQ, a + "q_proj.weight", {q, H}, true);
    t.add(TensorUse::kK, a + "k_proj.weight", {kv, H}, true);
    t.add(TensorUse::kV, a + "v_proj.weight", {kv, H}, true);
    t.add(TensorUse::kO, a + "o_proj.weight", {H, q}, true);
    if (d.qkv_bias) {
      t.add(TensorUse::kQBias, a + "q_proj.bias", {q});
      t.add(TensorUse::kKBias, a + "k_proj.bias", {kv});
      t.add(TensorUse::kVBias, a + "v_proj.bias", {kv});
    }
    if (d.qk_norm) {
      t.add(TensorUse::kQNorm, a + "q_norm.weight", {D});
      t.add(TensorUse::kKNorm, a + "k_norm.weight", {D});
    }
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

void dense_mlp_tensors(TensorSet& t, const DecoderConfig& d, const std::string& p) {
  const int64_t H = d.hidden, I = d.dense_intermediate;
  t.add(TensorUse::kDenseGate, p + "mlp.gate_proj.weight", {I, H}, true);
  t.add(TensorUse::kDenseUp, p + "mlp.up_proj.weight", {I, H}, true);
  t.add(TensorUse::kDenseDown, p + "mlp.down_proj.weight", {H, I}, true);
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
  const std::string p = ModelConfig::layer_prefix(layer);
  const int64_t H = d.hidden;
  TensorSet t;
  t.add(TensorUse::kInputNorm, p + "input_layernorm.weight", {H});
  t.add(TensorUse::kPostAttentionNorm, p + "post_attention_layernorm.weight", {H});
  attention_tensors(t, d, p + "self_attn.");
  // An extra (MTP) layer's block is a MoE one when the decoder's last layer is.
  const bool moe = layer < c.num_layers ? c.is_moe_layer(layer) : c.is_moe_layer(c.num_layers - 1);
  if (moe)
    moe_tensors(t, c, d, layer);
  else
    dense_mlp_tensors(t, d, p);
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

TensorSet end_tensors(const ModelConfig&, const DecoderConfig& d) {
  TensorSet t;
  t.add(TensorUse::kEmbed, "model.embed_tokens.weight", {d.vocab, d.hidden});
  t.add(TensorUse::kFinalNorm, "model.norm.weight", {d.hidden});
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
