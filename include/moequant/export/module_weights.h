// Quantizing the weights of one calibrated module into stored tensors.
#pragma once

#include <string>
#include <vector>

#include "moequant/calib/calibrate.h"
#include "moequant/core/quantize.h"

namespace moequant {

struct QuantizedWeight {
  std::string name;  // "<module>.<weight name>"
  std::vector<StoredTensor> tensors;
};

// Quantizes every weight the module exports (weights_for_export()) with the format and amax of
// its quantizer. A quantizer that is enabled but holds no amax is an error naming the module,
// the weight and the quantizer: it means calibration never observed that weight (the seed bug
// of an empty iter_weights_for_calibration()). Disabled quantizers export the weight as is.
std::vector<QuantizedWeight> quantize_module_weights(const QuantModuleRef& ref);

}  // namespace moequant
