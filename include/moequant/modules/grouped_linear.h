// GroupedLinear, as Transformer Engine holds it: `num_gemms` expert GEMMs in one module, with
// parameters weight0..weight{N-1} (and bias0..), ONE shared weight_quantizer and ONE shared
// input_quantizer. forward(x, m_splits) runs GEMM i on the next m_splits[i] rows of x.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "moequant/modules/linear.h"
#include "moequant/modules/quant_module.h"

namespace moequant {

struct GroupedLinearOptions {
  int64_t num_gemms = 0;     // local experts
  int64_t in_features = 0;   // local (a row-parallel shard's columns)
  int64_t out_features = 0;  // local (a column-parallel shard's rows)
  bool bias = false;
  ParallelSplit split = ParallelSplit::kNone;  // over the expert-tensor-parallel group
  // Global index of local GEMM 0 (EP rank e holds experts e*E/EP ..) and the global count.
  int64_t first_global_expert = 0;
  int64_t num_global_experts = 0;  // 0: same as num_gemms
  // One weight amax per expert (reduced over ETP only) instead of one shared by all experts
  // (reduced over ETP and EP, Transformer Engine's way), and one input amax per expert too.
  bool per_expert_amax = false;
  QuantFormat format = QuantFormat::kNone;
  at::ScalarType dtype = at::kFloat;
  // false: register weight0.. undefined (no memory), to be set later with set_weight() (a
  // loader that streams weights in, one layer at a time).
  bool init_weights = true;
};

class GroupedLinearImpl : public torch::nn::Module, public QuantModule {
 public:
  explicit GroupedLinearImpl(const GroupedLinearOptions& options);

  // x: [sum(m_splits), in]; returns [sum(m_splits), out].
  at::Tensor forward(const at::Tensor& x, const std::vector<int64_t>& m_splits);

  int64_t num_gemms() const { return options_.num_gemms; }
  const GroupedLinearOptions& options() const { return options_; }
  // The registered parameters weight{i} / bias{i} (undefined when not set).
  at::Tensor weight(int64_t i) const;
  at::Tensor bias(int64_t i) const;
  // Replaces parameter weight{i} (undefined releases it).
  void set_weight(int64_t i, at::Tensor w);
  int64_t global_expert(int64_t local) const { return options_.first_global_expert + local; }

  // The quantizer that covers weight i: the shared one, or expert i's in per-expert mode.
  std::shared_ptr<TensorQuantizer> quantizer_for(int64_t i) const;
  // The input quantizer of GEMM i: the shared one, or expert i's in per-expert mode (which
  // observes only the rows routed to expert i; the shared one still observes all rows).
  std::shared_ptr<TensorQuantizer> input_quantizer_for(int64_t i) const;

  // (weight_i, quantizer_for(i)) for every i.
  std::vector<CalibPair> iter_weights_for_calibration() override;
  std::vector<CalibPair> weights_for_export() override;
  std::vector<NamedQuantizer> named_quantizers() override;

 private:
  GroupedLinearOptions options_;
  std::vector<std::shared_ptr<TensorQuantizer>> expert_weight_quantizers_;
  std::vector<std::shared_ptr<TensorQuantizer>> expert_input_quantizers_;
};
TORCH_MODULE(GroupedLinear);

}  // namespace moequant
