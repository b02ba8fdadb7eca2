// Checks on every written scale before a checkpoint is published: finite and non-zero. Serving
// engines load a zero scale as 1/0 and produce NaN (ModelOpt users have shipped such files).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "moequant/common/dtype.h"
#include "moequant/common/format.h"

namespace moequant {

// True for the suffixes that hold scales ("weight_scale", "weight_scale_2", "weight_scale_inv",
// "input_scale", "scales").
bool is_scale_suffix(const std::string& name);

// Throws naming `name` when a scale tensor (CPU, bytes of `dtype`) holds a zero, NaN or Inf.
// Tensors that are not scales are ignored.
void check_scale_tensor(const std::string& name, DType dtype, const at::Tensor& host);

// The scalar scales that gate and up of one expert must carry with equal bytes: serving engines
// load the two as one fused gate_up weight and keep a single scalar (fp8: weight_scale and
// input_scale; nvfp4: weight_scale_2 and input_scale; none for the other formats, whose scales
// are per block and differ legitimately).
std::vector<std::string> gate_up_equal_suffixes(QuantFormat format);

}  // namespace moequant
