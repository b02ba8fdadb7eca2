// Checks on every scale written before a checkpoint is published, and read back by verify,
// inspect and eval: finite and positive. Serving
// engines load a zero scale as 1/0 and produce NaN (ModelOpt users have shipped such files).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "moequant/common/dtype.h"

namespace moequant {

// The one rule for a scale value, wherever scales are read (export, verify, inspect, eval):
// finite and positive. Zero loads as 1/0 (NaN); a negative scale flips the weights' signs.
inline bool is_valid_scale(float v) {
  return v > 0.0f && v <= 3.4028235e38f;  // false for NaN, +-Inf, 0 and negatives
}

// Throws naming `name` when a scale tensor (CPU, bytes of `dtype`) holds a value that is not
// is_valid_scale (zero, negative, NaN or Inf). Tensors whose suffix holds no scale in any format
// (core/format.h) are ignored.
void check_scale_tensor(const std::string& name, DType dtype, const at::Tensor& host);

}  // namespace moequant
