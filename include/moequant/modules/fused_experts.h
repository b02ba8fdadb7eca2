// Fused experts as Hugging Face transformers 5 holds them in memory: 3-D parameters
// gate_up_proj [E, 2I, H] (gate rows first) and down_proj [E, H, I], with a weight quantizer
// PER EXPERT and one input quantizer per projection shared by the experts.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "moequant/modules/quant_module.h"

namespace moequant {

struct FusedExpertsOptions {
  int64_t num_experts = 0;   // local experts
  int64_t hidden = 0;        // H
  int64_t intermediate = 0;  // I (local shard under ETP)
  int64_t first_global_expert = 0;
  QuantFormat format = QuantFormat::kNone;
  at::ScalarType dtype = at::kFloat;
};

class FusedExpertsImpl : public torch::nn::Module, public QuantModule {
 public:
  explicit FusedExpertsImpl(const FusedExpertsOptions& options);

  // SwiGLU experts: x [sum(m_splits), H] -> [sum(m_splits), H], expert e on its rows.
  at::Tensor forward(const at::Tensor& x, const std::vector<int64_t>& m_splits);

  const FusedExpertsOptions& options() const { return options_; }
  int64_t global_expert(int64_t local) const { return options_.first_global_expert + local; }

  // ("gate_up_proj[e]", gate_up_proj[e], gate_up_weight_quantizers[e]) and the same for
  // down_proj, for every local expert e.
  std::vector<CalibPair> iter_weights_for_calibration() override;
  std::vector<NamedQuantizer> named_quantizers() override;

  at::Tensor gate_up_proj;  // [E, 2I, H]
  at::Tensor down_proj;     // [E, H, I]
  std::vector<std::shared_ptr<TensorQuantizer>> gate_up_weight_quantizers;
  std::vector<std::shared_ptr<TensorQuantizer>> down_weight_quantizers;
  std::shared_ptr<TensorQuantizer> gate_up_input_quantizer;
  std::shared_ptr<TensorQuantizer> down_input_quantizer;

 private:
  FusedExpertsOptions options_;
};
TORCH_MODULE(FusedExperts);

}  // namespace moequant
