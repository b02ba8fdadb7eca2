#include "moequant/modules/fused_experts.h"

#include <ATen/ATen.h>

#include <numeric>

#include "moequant/common/error.h"
#include "moequant/modules/linear.h"

namespace moequant {

namespace {
std::shared_ptr<TensorQuantizer> expert_weight_quantizer(QuantFormat format) {
  auto q = std::make_shared<TensorQuantizer>(format);
  q->scope().etp = true;  // other EP ranks hold other experts: nothing to share there
  return q;
}
}  // namespace

FusedExpertsImpl::FusedExpertsImpl(const FusedExpertsOptions& o) : options_(o) {
  MQ_CHECK(o.num_experts > 0 && o.hidden > 0 && o.intermediate > 0,
           "FusedExperts: sizes must be positive (experts ", o.num_experts, ", hidden ", o.hidden,
           ", intermediate ", o.intermediate, ")");
  auto opts = at::TensorOptions().dtype(o.dtype);
  gate_up_proj = register_parameter("gate_up_proj",
                                    at::randn({o.num_experts, 2 * o.intermediate, o.hidden}, opts) /
                                        std::sqrt(static_cast<double>(o.hidden)));
  down_proj =
      register_parameter("down_proj", at::randn({o.num_experts, o.hidden, o.intermediate}, opts) /
                                          std::sqrt(static_cast<double>(o.intermediate)));
  for (int64_t e = 0; e < o.num_experts; ++e) {
    gate_up_weight_quantizers.push_back(expert_weight_quantizer(o.format));
    down_weight_quantizers.push_back(expert_weight_quantizer(o.format));
  }
  gate_up_input_quantizer = std::make_shared<TensorQuantizer>(o.format);
  gate_up_input_quantizer->scope() = input_scope(true, true);
  down_input_quantizer = std::make_shared<TensorQuantizer>(o.format);
  down_input_quantizer->scope() = input_scope(true, true);
}

std::vector<CalibPair> FusedExpertsImpl::iter_weights_for_calibration() {
  std::vector<CalibPair> pairs;
  for (int64_t e = 0; e < options_.num_experts; ++e) {
    pairs.push_back(
        {"gate_up_proj[" + std::to_string(e) + "]", gate_up_proj[e], gate_up_weight_quantizers[e]});
    pairs.push_back(
        {"down_proj[" + std::to_string(e) + "]", down_proj[e], down_weight_quantizers[e]});
  }
  return pairs;
}

std::vector<NamedQuantizer> FusedExpertsImpl::named_quantizers() {
  std::vector<NamedQuantizer> out;
  for (int64_t e = 0; e < options_.num_experts; ++e) {
    const std::string g = std::to_string(global_expert(e));
    out.emplace_back("gate_up_weight_quantizer." + g, gate_up_weight_quantizers[e]);
    out.emplace_back("down_weight_quantizer." + g, down_weight_quantizers[e]);
  }
  out.emplace_back("gate_up_input_quantizer", gate_up_input_quantizer);
  out.emplace_back("down_input_quantizer", down_input_quantizer);
  return out;
}

at::Tensor FusedExpertsImpl::forward(const at::Tensor& x, const std::vector<int64_t>& m_splits) {
  MQ_CHECK(static_cast<int64_t>(m_splits.size()) == options_.num_experts,
           "FusedExperts: ", m_splits.size(), " m_splits for ", options_.num_experts, " experts");
  const int64_t total = std::accumulate(m_splits.begin(), m_splits.end(), int64_t{0});
  MQ_CHECK(x.dim() == 2 && x.size(0) == total, "FusedExperts: input of shape ", x.sizes(),
           " does not match m_splits summing to ", total);
  maybe_observe_input(gate_up_input_quantizer, x);
  std::vector<at::Tensor> outs;
  int64_t row = 0;
  for (int64_t e = 0; e < options_.num_experts; ++e) {
    const at::Tensor xe = x.narrow(0, row, m_splits[e]);
    row += m_splits[e];
    const at::Tensor h = at::linear(xe, gate_up_proj[e]);
    const auto halves = h.chunk(2, /*dim=*/1);  // gate rows first
    const at::Tensor act = at::silu(halves[0]) * halves[1];
    maybe_observe_input(down_input_quantizer, act);
    outs.push_back(at::linear(act, down_proj[e]));
  }
  return at::cat(outs, 0);
}

}  // namespace moequant
