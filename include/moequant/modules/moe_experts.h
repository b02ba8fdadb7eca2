// One MoE layer's routed experts as Megatron-core holds them: linear_fc1 is a GroupedLinear
// whose weight i is expert i's [gate_r; up_r] ([2I/T, H] on ETP rank r of T), linear_fc2 a
// GroupedLinear whose weight i is expert i's down columns [H, I/T].
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "moequant/modules/grouped_linear.h"

namespace moequant {

struct MoeExpertsOptions {
  int64_t num_local_experts = 0;
  int64_t first_global_expert = 0;
  int64_t num_global_experts = 0;
  int64_t hidden = 0;              // H
  int64_t local_intermediate = 0;  // I / ETP
  bool per_expert_amax = false;
  QuantFormat format = QuantFormat::kNone;
  at::ScalarType dtype = at::kFloat;
  bool init_weights = true;  // false: weights registered undefined, set later
};

class MoeExpertsImpl : public torch::nn::Module {
 public:
  explicit MoeExpertsImpl(const MoeExpertsOptions& options);

  // SwiGLU experts on tokens sorted by local expert: x [sum(m_splits), H] -> [sum, H]. Under
  // ETP the result is this rank's partial sum of fc2 (the caller all-reduces it over ETP).
  at::Tensor forward(const at::Tensor& x, const std::vector<int64_t>& m_splits);

  const MoeExpertsOptions& options() const { return options_; }
  GroupedLinear linear_fc1{nullptr};
  GroupedLinear linear_fc2{nullptr};

 private:
  MoeExpertsOptions options_;
};
TORCH_MODULE(MoeExperts);

}  // namespace moequant
