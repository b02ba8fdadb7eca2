// Calibration over a torch::nn::Module tree: find the quantizable modules, name their
// quantizers, observe every weight in one batched pass, and observe inputs in calibration mode.
#pragma once

#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "moequant/modules/quant_module.h"

namespace moequant {

// Include / exclude patterns over module names: a plain pattern is a glob ("*.router",
// "lm_head"), a "re:" prefix makes it a regular expression searched in the name
// ("re:layers\.[0-3]\.").
class ModuleFilter {
 public:
  ModuleFilter() = default;
  ModuleFilter(std::vector<std::string> include, std::vector<std::string> exclude);
  // True when the name matches an include pattern (or there are none) and no exclude pattern.
  bool accepts(const std::string& module_name) const;

 private:
  std::vector<std::string> include_;
  std::vector<std::string> exclude_;
};

// True when `name` matches `pattern` (glob, or "re:" regular expression).
bool pattern_matches(const std::string& pattern, const std::string& name);

struct QuantModuleRef {
  std::string name;  // dotted module name from the root ("" for the root itself)
  QuantModule* module;
};

// Every QuantModule in the tree, in the tree's (deterministic) order. Each quantizer gets its
// full name "<module>.<quantizer>". Modules the filter rejects have their quantizers disabled
// and are left out.
std::vector<QuantModuleRef> find_quant_modules(torch::nn::Module& root,
                                               const ModuleFilter& filter = {});

struct WeightCalibrationReport {
  size_t modules = 0;
  size_t tensors = 0;     // weights observed
  size_t quantizers = 0;  // distinct quantizers that observed something
};

// Observes every (weight, quantizer) pair of every accepted module: one batched amax launch per
// device (all of them at once), then a running MAX into each quantizer. Quantizers are reset
// first, so calling it twice gives the same result. NaN/Inf weights are an error naming them.
WeightCalibrationReport calibrate_weights(torch::nn::Module& root, const ModuleFilter& filter = {});

// The same pass over explicit (weight, quantizer) pairs, whose weight_name names the tensor in
// errors (a loader that reads weights as views of a checkpoint, without modules holding them).
// Each quantizer is reset first (unless `reset` is false: then the pass MAX-merges into what the
// quantizers hold, for a caller that observes a layer's weights a few at a time); quantizers
// shared by several pairs observe all of them.
WeightCalibrationReport calibrate_pairs(const std::vector<CalibPair>& pairs, bool reset = true);

// While alive: input quantizers of accepted modules observe |x| in forward(), and autograd is
// off (no graph is recorded, no gradients change). Ends calibration mode when destroyed.
class CalibrationMode {
 public:
  explicit CalibrationMode(torch::nn::Module& root, const ModuleFilter& filter = {});
  ~CalibrationMode();
  CalibrationMode(const CalibrationMode&) = delete;
  CalibrationMode& operator=(const CalibrationMode&) = delete;

 private:
  std::vector<QuantModuleRef> modules_;
  bool previous_grad_mode_;
};

}  // namespace moequant
