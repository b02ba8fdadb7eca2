#include "moequant/core/tensor_quantizer.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "moequant/common/error.h"
#include "moequant/core/multi_amax.h"

namespace moequant {

TensorQuantizer::TensorQuantizer(QuantFormat format, AmaxAxis axis)
    : format_(format), axis_(axis) {}

bool TensorQuantizer::is_calibrated() const {
  if (amax_.empty()) return false;
  return std::all_of(amax_.begin(), amax_.end(), [](float v) { return v >= 0.0f; });
}

const std::vector<float>& TensorQuantizer::amax() const {
  MQ_CHECK(is_calibrated(), "quantizer '", name_, "' has no amax (it was never calibrated)");
  return amax_;
}

float TensorQuantizer::amax_scalar() const {
  const auto& a = amax();
  MQ_CHECK(a.size() == 1, "quantizer '", name_, "' is per-channel (", a.size(),
           " values); a per-tensor amax was asked for");
  return a[0];
}

void TensorQuantizer::merge_amax(const float* values, size_t n) {
  if (amax_.empty()) amax_.assign(n, kUncalibrated);
  MQ_CHECK(amax_.size() == n, "quantizer '", name_, "': amax has ", amax_.size(),
           " values, observation has ", n);
  for (size_t i = 0; i < n; ++i) amax_[i] = std::max(amax_[i], values[i]);
}

void TensorQuantizer::observe(const at::Tensor& x, const std::string& what) {
  const bool per_channel = axis_ == AmaxAxis::kPerChannel;
  MQ_CHECK(!per_channel || x.dim() == 2, "quantizer '", name_,
           "': per-channel observation needs a 2-D tensor, got ", x.sizes());
  std::vector<float> slots(per_channel ? x.size(0) : 1, 0.0f);
  if (x.numel() == 0) return;  // nothing seen: leave the state as it was
  multi_amax({AmaxTask{x, per_channel, 0, what + " (quantizer '" + name_ + "')"}}, slots);
  merge_amax(slots.data(), slots.size());
}

}  // namespace moequant
