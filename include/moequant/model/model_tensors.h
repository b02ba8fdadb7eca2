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

struct ModelTensor {
  TensorUse use;
  std::string name;
  std::vector<int64_t> shape;
  bool linear = false;  // the weight of a linear module (name ends in ".weight", [out, in])
};

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

// "q_proj" for kQ: the name of a use in messages.
const char* use_name(TensorUse use);

}  // namespace moequant
