#include "moequant/modules/grouped_linear.h"

#include <ATen/ATen.h>

#include <numeric>

#include "moequant/common/error.h"

namespace moequant {

GroupedLinearImpl::GroupedLinearImpl(const GroupedLinearOptions& options) : options_(options) {
  MQ_CHECK(options.num_gemms > 0, "GroupedLinear: num_gemms must be positive");
  if (options_.num_global_experts == 0) options_.num_global_experts = options.num_gemms;
  auto opts = at::TensorOptions().dtype(options.dtype);
  const double init_scale = 1.0 / std::sqrt(static_cast<double>(options.in_features));
  for (int64_t i = 0; i < options.num_gemms; ++i) {
    register_parameter(
        "weight" + std::to_string(i),
        options.init_weights
            ? at::randn({options.out_features, options.in_features}, opts) * init_scale
            : at::Tensor(),
        options.init_weights);
    if (options.bias)
      register_parameter("bias" + std::to_string(i), at::zeros({options.out_features}, opts));
  }
  weight_quantizer = std::make_shared<TensorQuantizer>(options.format);
  weight_quantizer->scope().etp = true;
  weight_quantizer->scope().ep = true;
  input_quantizer = std::make_shared<TensorQuantizer>(options.format);
  input_quantizer->scope() = input_scope(/*expert=*/true, /*shared_across_experts=*/true);
  if (options.per_expert_amax) {
    for (int64_t i = 0; i < options.num_gemms; ++i) {
      auto w = std::make_shared<TensorQuantizer>(options.format);
      w->scope().etp = true;
      expert_weight_quantizers_.push_back(w);
      auto in = std::make_shared<TensorQuantizer>(options.format);
      in->scope() = input_scope(/*expert=*/true, /*shared_across_experts=*/false);
      expert_input_quantizers_.push_back(in);
    }
  }
}

at::Tensor GroupedLinearImpl::weight(int64_t i) const {
  MQ_CHECK(i >= 0 && i < options_.num_gemms, "GroupedLinear: weight", i, " out of range");
  return parameters_["weight" + std::to_string(i)];
}

at::Tensor GroupedLinearImpl::bias(int64_t i) const {
  MQ_CHECK(options_.bias, "GroupedLinear: no biases");
  return parameters_["bias" + std::to_string(i)];
}

void GroupedLinearImpl::set_weight(int64_t i, at::Tensor w) {
  MQ_CHECK(i >= 0 && i < options_.num_gemms, "GroupedLinear: weight", i, " out of range");
  MQ_CHECK(!w.defined() || (w.dim() == 2 && w.size(0) == options_.out_features &&
                            w.size(1) == options_.in_features),
           "GroupedLinear: weight", i, " must be [", options_.out_features, ", ",
           options_.in_features, "], got ", w.defined() ? w.sizes() : at::IntArrayRef{});
  parameters_["weight" + std::to_string(i)] = std::move(w);
}

std::shared_ptr<TensorQuantizer> GroupedLinearImpl::quantizer_for(int64_t i) const {
  MQ_CHECK(i >= 0 && i < options_.num_gemms, "GroupedLinear: gemm ", i, " out of range");
  return options_.per_expert_amax ? expert_weight_quantizers_[i] : weight_quantizer;
}

std::shared_ptr<TensorQuantizer> GroupedLinearImpl::input_quantizer_for(int64_t i) const {
  MQ_CHECK(i >= 0 && i < options_.num_gemms, "GroupedLinear: gemm ", i, " out of range");
  return options_.per_expert_amax ? expert_input_quantizers_[i] : input_quantizer;
}

std::vector<CalibPair> GroupedLinearImpl::weights_for_export() {
  return GroupedLinearImpl::iter_weights_for_calibration();
}

std::vector<CalibPair> GroupedLinearImpl::iter_weights_for_calibration() {
  std::vector<CalibPair> pairs;
  for (int64_t i = 0; i < options_.num_gemms; ++i)
    if (weight(i).defined())
      pairs.push_back({"weight" + std::to_string(i), weight(i), quantizer_for(i)});
  return pairs;
}

std::vector<NamedQuantizer> GroupedLinearImpl::named_quantizers() {
  std::vector<NamedQuantizer> out;
  if (options_.per_expert_amax) {
    // Named by GLOBAL expert index so that every rank derives the same names.
    for (int64_t i = 0; i < options_.num_gemms; ++i) {
      out.emplace_back("weight_quantizer." + std::to_string(global_expert(i)),
                       expert_weight_quantizers_[i]);
      out.emplace_back("input_quantizer." + std::to_string(global_expert(i)),
                       expert_input_quantizers_[i]);
    }
  } else {
    out.emplace_back("weight_quantizer", weight_quantizer);
  }
  // The shared input quantizer is kept in per-expert mode too: it observes every token of the
  // layer and is the fallback of an expert that saw none (docs/formats.md, "Calibration (amax)").
  out.emplace_back("input_quantizer", input_quantizer);
  return out;
}

at::Tensor GroupedLinearImpl::forward(const at::Tensor& x, const std::vector<int64_t>& m_splits) {
  MQ_CHECK(static_cast<int64_t>(m_splits.size()) == options_.num_gemms,
           "GroupedLinear: ", m_splits.size(), " m_splits for ", options_.num_gemms, " gemms");
  const int64_t total = std::accumulate(m_splits.begin(), m_splits.end(), int64_t{0});
  MQ_CHECK(x.dim() == 2 && x.size(0) == total, "GroupedLinear: input of shape ", x.sizes(),
           " does not match m_splits summing to ", total);
  maybe_observe_input(input_quantizer, x);
  std::vector<at::Tensor> outs;
  int64_t row = 0;
  for (int64_t i = 0; i < options_.num_gemms; ++i) {
    const at::Tensor xi = x.narrow(0, row, m_splits[i]);
    row += m_splits[i];
    if (options_.per_expert_amax && m_splits[i] > 0)
      maybe_observe_input(expert_input_quantizers_[i], xi);
    outs.push_back(options_.bias ? at::linear(xi, weight(i), bias(i)) : at::linear(xi, weight(i)));
  }
  return at::cat(outs, 0);
}

}  // namespace moequant
