// Checks on every scale written before a checkpoint is published, and read back by verify,
// inspect and eval: finite and positive. Serving
// engines load a zero scale as 1/0 and produce NaN (ModelOpt users have shipped such files).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "moequant/common/dtype.h"
#include "moequant/common/format.h"

namespace moequant {

// The one rule for a scale value, wherever scales are read (export, verify, inspect, eval):
// finite and positive. Zero loads as 1/0 (NaN); a negative scale flips the weights' signs.
inline bool is_valid_scale(float v) {
  return v > 0.0f && v <= 3.4028235e38f;  // false for NaN, +-Inf, 0 and negatives
}

// True for the suffixes that hold scales ("weight_scale", "weight_scale_2", "weight_scale_inv",
// "input_scale", "scales").
bool is_scale_suffix(const std::string& name);

// Throws naming `name` when a scale tensor (CPU, bytes of `dtype`) holds a value that is not
// is_valid_scale (zero, negative, NaN or Inf). Tensors that are not scales are ignored.
void check_scale_tensor(const std::string& name, DType dtype, const at::Tensor& host);

// The scalar scales that gate and up of one expert must carry with equal bytes: serving engines
// load the two as one fused gate_up weight and keep a single scalar (fp8: weight_scale and
// input_scale; nvfp4: weight_scale_2 and input_scale; none for the other formats, whose scales
// are per block and differ legitimately).
std::vector<std::string> gate_up_equal_suffixes(QuantFormat format);

}  // namespace moequant
