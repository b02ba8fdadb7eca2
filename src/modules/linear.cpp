#include "moequant/modules/linear.h"

#include <ATen/ATen.h>

namespace moequant {

ReduceScope linear_weight_scope(ParallelSplit split, AmaxAxis axis, bool expert) {
  ReduceScope s;
  // Per-channel on a column split: each rank owns whole rows, nothing to reduce.
  const bool reduce = split != ParallelSplit::kColumn || axis == AmaxAxis::kPerTensor;
  if (reduce) (expert ? s.etp : s.tp) = true;
  return s;
}

ReduceScope input_scope(bool expert, bool shared_across_experts) {
  ReduceScope s;
  if (expert) {
    s.etp = s.edp = true;
    s.ep = shared_across_experts;
  } else {
    s.tp = s.dp = true;
  }
  return s;
}

LinearImpl::LinearImpl(const LinearOptions& options) : options_(options) {
  auto opts = at::TensorOptions().dtype(options.dtype);
  weight =
      register_parameter("weight", at::randn({options.out_features, options.in_features}, opts) /
                                       std::sqrt(static_cast<double>(options.in_features)));
  if (options.bias) bias = register_parameter("bias", at::zeros({options.out_features}, opts));
  weight_quantizer = std::make_shared<TensorQuantizer>(options.format, options.axis);
  weight_quantizer->scope() = linear_weight_scope(options.split, options.axis, options.expert);
  input_quantizer = std::make_shared<TensorQuantizer>(options.format);
  input_quantizer->scope() = input_scope(options.expert, false);
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  maybe_observe_input(input_quantizer, x);
  return bias.defined() ? at::linear(x, weight, bias) : at::linear(x, weight);
}

}  // namespace moequant
