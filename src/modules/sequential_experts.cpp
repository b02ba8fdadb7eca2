#include "moequant/modules/sequential_experts.h"

#include <ATen/ATen.h>

#include <numeric>

#include "moequant/common/error.h"

namespace moequant {

namespace {
Linear expert_linear(int64_t in, int64_t out, QuantFormat format, at::ScalarType dtype) {
  LinearOptions o;
  o.in_features = in;
  o.out_features = out;
  o.expert = true;
  o.format = format;
  o.dtype = dtype;
  return Linear(o);
}
}  // namespace

ExpertMLPImpl::ExpertMLPImpl(int64_t hidden, int64_t intermediate, QuantFormat format,
                             at::ScalarType dtype) {
  gate_proj = register_module("gate_proj", expert_linear(hidden, intermediate, format, dtype));
  up_proj = register_module("up_proj", expert_linear(hidden, intermediate, format, dtype));
  down_proj = register_module("down_proj", expert_linear(intermediate, hidden, format, dtype));
}

at::Tensor ExpertMLPImpl::forward(const at::Tensor& x) {
  return down_proj->forward(at::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

SequentialExpertsImpl::SequentialExpertsImpl(int64_t num_experts, int64_t hidden,
                                             int64_t intermediate, QuantFormat format,
                                             at::ScalarType dtype) {
  MQ_CHECK(num_experts > 0, "SequentialExperts: num_experts must be positive");
  list_ = register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < num_experts; ++e) {
    experts_.push_back(ExpertMLP(hidden, intermediate, format, dtype));
    list_->push_back(experts_.back());
  }
}

at::Tensor SequentialExpertsImpl::forward(const at::Tensor& x,
                                          const std::vector<int64_t>& m_splits) {
  MQ_CHECK(static_cast<int64_t>(m_splits.size()) == num_experts(),
           "SequentialExperts: ", m_splits.size(), " m_splits for ", num_experts(), " experts");
  const int64_t total = std::accumulate(m_splits.begin(), m_splits.end(), int64_t{0});
  MQ_CHECK(x.dim() == 2 && x.size(0) == total, "SequentialExperts: input of shape ", x.sizes(),
           " does not match m_splits summing to ", total);
  std::vector<at::Tensor> outs;
  int64_t row = 0;
  for (int64_t e = 0; e < num_experts(); ++e) {
    // An expert that got no tokens is not run, so its input quantizers stay uncalibrated.
    if (m_splits[e] > 0) outs.push_back(experts_[e]->forward(x.narrow(0, row, m_splits[e])));
    row += m_splits[e];
  }
  if (outs.empty()) return at::zeros_like(x);
  return at::cat(outs, 0);
}

}  // namespace moequant
