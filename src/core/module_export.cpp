#include "moequant/core/module_export.h"

#include "moequant/core/error.h"

namespace moequant {

std::vector<QuantizedWeight> quantize_module_weights(const QuantModuleRef& ref) {
  std::vector<QuantizedWeight> out;
  for (const CalibPair& pair : ref.module->weights_for_export()) {
    const std::string name =
        ref.name.empty() ? pair.weight_name : ref.name + "." + pair.weight_name;
    const bool quantize = pair.quantizer && pair.quantizer->enabled();
    if (!quantize) {
      out.push_back({name, quantize_weight(pair.weight, QuantFormat::kNone, {}, name)});
      continue;
    }
    const TensorQuantizer& q = *pair.quantizer;
    MQ_CHECK(q.is_calibrated(), "module '", ref.name, "': cannot export ", pair.weight_name,
             ": its quantizer '", q.name(),
             "' has no amax (calibration never observed this weight; does the module's "
             "iter_weights_for_calibration() list it?)");
    out.push_back({name, quantize_weight(pair.weight.detach(), q.format(), q.amax(), name)});
  }
  return out;
}

}  // namespace moequant
