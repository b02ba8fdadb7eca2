// QuantModule: what a module exposes so that calibration, synchronization and export can
// work on it without knowing its concrete type (ModelOpt's quantized-module interface).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "moequant/core/tensor_quantizer.h"

namespace moequant {

// One (weight, quantizer) pair to observe. `weight_name` is the parameter's name inside the
// module ("weight", "weight3", "gate_up_proj[5]").
struct CalibPair {
  std::string weight_name;
  at::Tensor weight;
  std::shared_ptr<TensorQuantizer> quantizer;
};

using NamedQuantizer = std::pair<std::string, std::shared_ptr<TensorQuantizer>>;

class QuantModule {
 public:
  virtual ~QuantModule() = default;

  // Every (weight, quantizer) pair to observe during weight calibration. Default: the
  // parameter `weight` with `weight_quantizer`, nothing when `weight` is undefined (a module
  // whose weight was removed).
  virtual std::vector<CalibPair> iter_weights_for_calibration();

  // Every weight the exporter writes, with the quantizer that covers it. Default: the same list
  // as iter_weights_for_calibration(). Modules whose export view differs override it (a grouped
  // linear always exports every weight_i, whatever its calibration list said).
  virtual std::vector<CalibPair> weights_for_export() { return iter_weights_for_calibration(); }

  // Every quantizer with its name relative to the module ("weight_quantizer", ...). Default:
  // weight_quantizer and input_quantizer when set.
  virtual std::vector<NamedQuantizer> named_quantizers();

  // Turns input observation in forward() on or off for this module's input quantizers.
  void set_calibrating(bool on);

  std::shared_ptr<TensorQuantizer> weight_quantizer;
  std::shared_ptr<TensorQuantizer> input_quantizer;

 protected:
  // The parameter called `weight` (undefined when absent); modules with one weight override.
  virtual at::Tensor default_weight() { return at::Tensor(); }
  // Observes |x| into `q` when it is calibrating. Runs without autograd.
  static void maybe_observe_input(const std::shared_ptr<TensorQuantizer>& q, const at::Tensor& x);
};

}  // namespace moequant
