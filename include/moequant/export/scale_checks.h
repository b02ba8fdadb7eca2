// Checks on every written scale before a checkpoint is published: finite and non-zero. Serving
// engines load a zero scale as 1/0 and produce NaN (ModelOpt users have shipped such files).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "moequant/core/dtype.h"

namespace moequant {

// True for the suffixes that hold scales ("weight_scale", "weight_scale_2", "weight_scale_inv",
// "input_scale", "scales").
bool is_scale_suffix(const std::string& name);

// Throws naming `name` when a scale tensor (CPU, bytes of `dtype`) holds a zero, NaN or Inf.
// Tensors that are not scales are ignored.
void check_scale_tensor(const std::string& name, DType dtype, const at::Tensor& host);

}  // namespace moequant
