// Sequential experts: one small SwiGLU MLP of plain quantizable Linears per expert
// (gate_proj, up_proj, down_proj), as Hugging Face models without fused experts hold them.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "moequant/modules/linear.h"

namespace moequant {

class ExpertMLPImpl : public torch::nn::Module {
 public:
  ExpertMLPImpl(int64_t hidden, int64_t intermediate, QuantFormat format, at::ScalarType dtype);
  at::Tensor forward(const at::Tensor& x);
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(ExpertMLP);

class SequentialExpertsImpl : public torch::nn::Module {
 public:
  SequentialExpertsImpl(int64_t num_experts, int64_t hidden, int64_t intermediate,
                        QuantFormat format, at::ScalarType dtype = at::kFloat);
  // x [sum(m_splits), H] -> [sum(m_splits), H], expert e on its rows.
  at::Tensor forward(const at::Tensor& x, const std::vector<int64_t>& m_splits);
  ExpertMLP expert(int64_t e) { return experts_[e]; }
  int64_t num_experts() const { return static_cast<int64_t>(experts_.size()); }

 private:
  std::vector<ExpertMLP> experts_;
  torch::nn::ModuleList list_;
};
TORCH_MODULE(SequentialExperts);

}  // namespace moequant
