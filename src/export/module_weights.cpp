#include "moequant/export/module_weights.h"

#include "moequant/common/error.h"
#include "moequant/export/weight_amax.h"

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
    const std::vector<float> amax = resolve_weight_amax(
        q, ref.name, pair.weight_name, UncalibratedWeights::kError, nullptr, nullptr);
    out.push_back({name, quantize_weight(pair.weight.detach(), q.format(), amax, name)});
  }
  return out;
}

}  // namespace moequant
