#include "moequant/hf/dense_quantizers.h"

#include "moequant/modules/linear.h"

namespace moequant {

DenseGroupImpl::DenseGroupImpl(std::vector<DenseLinear> members, QuantFormat format)
    : members_(std::move(members)) {
  weight_quantizer = std::make_shared<TensorQuantizer>(format, AmaxAxis::kPerTensor);
  // Per tensor over the whole (unsplit) weight, whichever way TP splits it.
  weight_quantizer->scope() =
      linear_weight_scope(ParallelSplit::kColumn, AmaxAxis::kPerTensor, /*expert=*/false);
  input_quantizer = std::make_shared<TensorQuantizer>(format);
  input_quantizer->scope() = input_scope(/*expert=*/false, /*shared_across_experts=*/false);
}

KvCacheQuantizersImpl::KvCacheQuantizersImpl() {
  keys = std::make_shared<TensorQuantizer>(QuantFormat::kFP8);
  values = std::make_shared<TensorQuantizer>(QuantFormat::kFP8);
  keys->scope() = values->scope() = input_scope(/*expert=*/false, false);
}

std::vector<NamedQuantizer> KvCacheQuantizersImpl::named_quantizers() {
  return {{"k_bmm_quantizer", keys}, {"v_bmm_quantizer", values}};
}

}  // namespace moequant
