// TensorQuantizer: the calibration state of one quantized tensor (or of a set of tensors that
// share it, such as the experts of a grouped linear), in ModelOpt's vocabulary.
//
// It holds the format, the amax (per tensor, or per output channel = axis 0), whether it was
// calibrated, and which parallel groups its amax must be MAX-reduced over. It does not hold the
// tensors it observes; modules expose (weight, quantizer) pairs for that.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "moequant/core/format.h"
#include "moequant/parallel/amax_sync.h"

namespace moequant {

enum class AmaxAxis { kPerTensor, kPerChannel };

// The parallel groups over which a quantizer's amax is MAX-reduced (docs/design.md, "Amax
// synchronization"). A shared grouped-linear weight quantizer: etp + ep; a per-expert one:
// etp; dense per-tensor: tp; input quantizers also dp / edp.
struct ReduceScope {
  bool tp = false;
  bool etp = false;
  bool ep = false;
  bool dp = false;
  bool edp = false;
};

class TensorQuantizer {
 public:
  // Value of an amax slot that never observed anything (an expert that saw no tokens): the
  // parallel layer's sentinel. MAX with any real amax (>= 0) yields the real one, so sentinels
  // travel in the same collective.
  static constexpr float kUncalibrated = parallel::kUncalibratedAmax;

  explicit TensorQuantizer(QuantFormat format = QuantFormat::kNone,
                           AmaxAxis axis = AmaxAxis::kPerTensor);

  QuantFormat format() const { return format_; }
  AmaxAxis axis() const { return axis_; }
  bool enabled() const { return enabled_ && format_ != QuantFormat::kNone; }
  void set_enabled(bool e) { enabled_ = e; }

  // Fully qualified name ("model.layers.3.mlp.experts.linear_fc1.weight_quantizer"), set when
  // the module tree is walked; used in every message and as the sync ordering key.
  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }

  // True once every amax slot holds a real value.
  bool is_calibrated() const;
  // Per-tensor: one value; per-channel: one per row. Throws (naming the quantizer) if
  // uncalibrated.
  const std::vector<float>& amax() const;
  float amax_scalar() const;
  // Raw slots, sentinel included (for synchronization and fallbacks).
  std::vector<float>& amax_slots() { return amax_; }
  const std::vector<float>& amax_slots() const { return amax_; }
  void set_amax(std::vector<float> amax) { amax_ = std::move(amax); }
  void reset() { amax_.clear(); }

  // Running MAX of |x|: per-tensor over all elements, per-channel over each row of a 2-D x.
  // NaN/Inf in x is an error naming `what` (the tensor) and this quantizer.
  void observe(const at::Tensor& x, const std::string& what = "input");
  // MAX-combines already computed values (the batched calibration pass uses this).
  void merge_amax(const float* values, size_t n);

  // Whether forward() calls observe on inputs (calibration mode).
  bool calibrating() const { return calibrating_; }
  void set_calibrating(bool c) { calibrating_ = c; }

  ReduceScope& scope() { return scope_; }
  const ReduceScope& scope() const { return scope_; }

 private:
  QuantFormat format_;
  AmaxAxis axis_;
  bool enabled_ = true;
  bool calibrating_ = false;
  std::string name_;
  std::vector<float> amax_;
  ReduceScope scope_;
};

}  // namespace moequant
