#include "moequant/modules/quant_module.h"

#include <ATen/core/grad_mode.h>

namespace moequant {

std::vector<CalibPair> QuantModule::iter_weights_for_calibration() {
  at::Tensor w = default_weight();
  if (!w.defined() || !weight_quantizer) return {};
  return {CalibPair{"weight", w, weight_quantizer}};
}

std::vector<NamedQuantizer> QuantModule::named_quantizers() {
  std::vector<NamedQuantizer> out;
  if (weight_quantizer) out.emplace_back("weight_quantizer", weight_quantizer);
  if (input_quantizer) out.emplace_back("input_quantizer", input_quantizer);
  return out;
}

void QuantModule::set_calibrating(bool on) {
  for (auto& nq : named_quantizers())
    if (nq.first.find("input_quantizer") != std::string::npos) nq.second->set_calibrating(on);
}

void QuantModule::maybe_observe_input(const std::shared_ptr<TensorQuantizer>& q,
                                      const at::Tensor& x) {
  if (!q || !q->calibrating()) return;
  at::NoGradGuard no_grad;  // observation never records a graph
  q->observe(x.detach(), "input");
}

}  // namespace moequant
