// Checks on every written scale before a checkpoint is published: finite and non-zero. Serving
// engines load a zero scale as 1/0 and produce NaN (ModelOpt users have shipped such files).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "moequant/common/dtype.h"

namespace moequant {

// Throws naming `name` when a scale tensor (CPU, bytes of `dtype`) holds a zero, NaN or Inf.
// Tensors whose suffix holds no scale in any format (core/format.h) are ignored.
void check_scale_tensor(const std::string& name, DType dtype, const at::Tensor& host);

}  // namespace moequant
