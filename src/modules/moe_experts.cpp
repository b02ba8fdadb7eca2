#include "moequant/modules/moe_experts.h"

#include <ATen/ATen.h>

namespace moequant {

MoeExpertsImpl::MoeExpertsImpl(const MoeExpertsOptions& o) : options_(o) {
  GroupedLinearOptions fc1;
  fc1.num_gemms = o.num_local_experts;
  fc1.in_features = o.hidden;
  fc1.out_features = 2 * o.local_intermediate;
  fc1.split = ParallelSplit::kColumn;
  fc1.first_global_expert = o.first_global_expert;
  fc1.num_global_experts = o.num_global_experts;
  fc1.per_expert_amax = o.per_expert_amax;
  fc1.format = o.format;
  fc1.dtype = o.dtype;
  fc1.init_weights = o.init_weights;
  GroupedLinearOptions fc2 = fc1;
  fc2.in_features = o.local_intermediate;
  fc2.out_features = o.hidden;
  fc2.split = ParallelSplit::kRow;
  linear_fc1 = register_module("linear_fc1", GroupedLinear(fc1));
  linear_fc2 = register_module("linear_fc2", GroupedLinear(fc2));
}

at::Tensor MoeExpertsImpl::forward(const at::Tensor& x, const std::vector<int64_t>& m_splits) {
  const at::Tensor h = linear_fc1->forward(x, m_splits);
  const auto halves = h.chunk(2, /*dim=*/1);  // [gate_r; up_r] rows -> [gate | up] columns
  return linear_fc2->forward(at::silu(halves[0]) * halves[1], m_splits);
}

}  // namespace moequant
