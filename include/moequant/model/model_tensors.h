// The tensors a model's config implies, routed experts aside (the experts' shapes follow from
// ModelConfig alone): for each decoder layer its norms, its attention (of the layer's kind), its
// router with the family's correction bias, shared expert and gate, or its dense MLP; the
// embedding, final norm and lm_head; and the multi-token-prediction layers past the decoder.
// Each tensor has a use that says what it is, whatever the family calls it, so that the forward
// reads by use, the checks name what is missing, and the generator writes a complete checkpoint,
// all from this one list.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moequant/model/decoder_config.h"
#include "moequant/model/model_config.h"

namespace moequant {

enum class TensorUse {
  // the ends of the model
  kEmbed,
  kFinalNorm,
  kLmHead,
  // every decoder layer
  kInputNorm,
  kPostAttentionNorm,
  // grouped-query attention (kQ is also MLA's q_proj when it has no q_lora_rank)
  kQ,
  kK,
  kV,
  kO,
  kQBias,
  kKBias,
  kVBias,
  kOBias,
  kQNorm,
  kKNorm,
  kSinks,  // GPT-OSS: one logit per head
  // Gated DeltaNet (a linear_attention layer's linear_attn.*)
  kLinearQkvz,
  kLinearBa,
  kLinearQkv,
  kLinearZ,
  kLinearB,
  kLinearA,
  kLinearConv,
  kLinearALog,
  kLinearDtBias,
  kLinearNorm,
  kLinearOut,
  // multi-head latent attention
  kQA,
  kQANorm,
  kQB,
  kKVA,
  kKVANorm,
  kKVB,
  // a MoE layer, routed experts aside
  kRouter,
  kRouterBias,        // the correction bias of the choice (DeepSeek's e_score_correction_bias)
  kRouterLinearBias,  // GPT-OSS: the router linear's own bias
  kExpertGateUpBias,  // GPT-OSS: the routed experts' biases, [E, 2I] and [E, H]
  kExpertDownBias,
  kSharedGate,
  kSharedUp,
  kSharedDown,
  kSharedExpertGate,
  // a dense layer
  kDenseGate,
  kDenseUp,
  kDenseDown,
  // a multi-token-prediction layer (besides a decoder layer's tensors)
  kMtpEmbed,
  kMtpEnorm,
  kMtpHnorm,
  kMtpEhProj,
  kMtpHeadNorm,
  kMtpHead,
};

// How Megatron splits a dense linear over tensor-parallel ranks: column-parallel (output rows:
// q/k/v, gate/up, MLA's q_b/kv_b), row-parallel (input columns: o, down), or whole on every rank
// (MLA's low-rank down projections).
enum class TpSplit { kNone, kColumn, kRow };

struct ModelTensor {
  TensorUse use;
  std::string name;
  std::vector<int64_t> shape;
  bool linear = false;  // the weight of a linear module (name ends in ".weight", [out, in])
};

// What `--quantize all-linear` does with a linear of this use (ModelOpt's default
// configuration): quantized, unless it is the router, a shared expert's gate, lm_head or part of
// an MTP layer.
bool quantizable_dense_linear(TensorUse use);
// Its Megatron TP split.
TpSplit tp_split(TensorUse use);
// The linears engines fuse into one (one input, one scale): q/k/v; MLA's q_a with kv_a; a dense
// MLP's and a shared expert's gate with up. The group's first use names it; kNone-like uses
// return themselves.
TensorUse fusion_group(TensorUse use);

// The tensors of one part of the model, found by use.
class TensorSet {
 public:
  void add(TensorUse use, std::string name, std::vector<int64_t> shape, bool linear = false);
  const std::vector<ModelTensor>& all() const { return tensors_; }
  // nullptr when the part has no such tensor.
  const ModelTensor* find(TensorUse use) const;
  // Errors name the use when the part has none (a bug in the caller).
  const ModelTensor& get(TensorUse use) const;

 private:
  std::vector<ModelTensor> tensors_;
};

// Layer `layer` (a decoder layer, or an extra MTP layer: then its MTP tensors too). Routed experts
// are not listed.
TensorSet layer_tensors(const ModelConfig& config, const DecoderConfig& d, int layer);
// The embedding, the final norm and lm_head (not listed when tied to the embedding).
TensorSet end_tensors(const ModelConfig& config, const DecoderConfig& d);

// A dense linear that `--quantize all-linear` quantizes (docs/design.md, "Dense linears"), with
// the fusion group whose members share its weight and input scales.
struct DenseLinear {
  int layer = 0;
  TensorUse use = TensorUse::kQ;
  TensorUse group = TensorUse::kQ;  // fusion_group(use)
  std::string module;               // "model.layers.0.self_attn.q_proj"
  std::string weight;               // module + ".weight"
  std::vector<int64_t> shape;       // [out, in]
  TpSplit split = TpSplit::kNone;
};
// Every such linear of the decoder layers (not of MTP layers), in model order.
std::vector<DenseLinear> dense_linears(const ModelConfig& config, const DecoderConfig& d);
// The members of layer `layer`'s fusion group `group` among `all`.
std::vector<const DenseLinear*> fusion_members(const std::vector<DenseLinear>& all, int layer,
                                               TensorUse group);

// "q_proj" for kQ: the name of a use in messages.
const char* use_name(TensorUse use);

}  // namespace moequant
