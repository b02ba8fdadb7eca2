// The one policy for a weight quantizer that holds no amax, the same on every export path (the
// tool's exporter and quantize_module_weights): calibration never observed its weights, which is
// the seed bug of an empty iter_weights_for_calibration(), so by default export fails naming the
// module and the quantizer; a fallback to the weight's own amax happens only when asked for.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "moequant/core/tensor_quantizer.h"

namespace moequant {

enum class UncalibratedWeights {
  kError,     // the default: fail naming the module and the quantizer
  kFallback,  // asked for: the weight's own amax, reported as a warning by the caller
};

// q's amax when calibrated. Otherwise: kError throws naming `module` and its `weight`;
// kFallback returns {own_amax()} and sets *fell_back.
std::vector<float> resolve_weight_amax(const TensorQuantizer& q, const std::string& module,
                                       const std::string& weight, UncalibratedWeights policy,
                                       const std::function<float()>& own_amax, bool* fell_back);

}  // namespace moequant
