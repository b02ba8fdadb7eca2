// A quantizable dense linear layer, optionally one tensor-parallel shard of a larger one.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "moequant/modules/quant_module.h"

namespace moequant {

// How a layer's weight is split over its tensor-parallel group (Megatron conventions):
// column-parallel splits the output rows, row-parallel splits the input columns.
enum class ParallelSplit { kNone, kColumn, kRow };

struct LinearOptions {
  int64_t in_features = 0;
  int64_t out_features = 0;  // local rows (this shard's, for a column-parallel split)
  bool bias = false;
  ParallelSplit split = ParallelSplit::kNone;
  bool expert = false;  // part of one expert: reduce over ETP/EDP instead of TP/DP
  QuantFormat format = QuantFormat::kNone;
  AmaxAxis axis = AmaxAxis::kPerTensor;
  at::ScalarType dtype = at::kFloat;
};

class LinearImpl : public torch::nn::Module, public QuantModule {
 public:
  explicit LinearImpl(const LinearOptions& options);
  at::Tensor forward(const at::Tensor& x);
  const LinearOptions& options() const { return options_; }

  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined

 protected:
  at::Tensor default_weight() override { return weight; }

 private:
  LinearOptions options_;
};
TORCH_MODULE(Linear);

// The reduction scope of a weight quantizer of a (possibly expert) linear layer.
ReduceScope linear_weight_scope(ParallelSplit split, AmaxAxis axis, bool expert);
// The reduction scope of an input quantizer: every rank of the data- and tensor-parallel
// groups that saw part of the activations.
ReduceScope input_scope(bool expert, bool shared_across_experts);

}  // namespace moequant
