// Quantizing one 2-D weight into the tensors its format stores (docs/formats.md), and back.
// Weights on a CUDA device are quantized there by the CUDA kernels, CPU weights by the CPU path;
// the bytes are equal. What each format stores is its descriptor's (core/format.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "moequant/common/dtype.h"
#include "moequant/core/format.h"

namespace moequant {

// One stored tensor: `suffix` replaces ".weight" in the checkpoint name (the format's layout,
// core/format.h). `data` is contiguous, on the weight's device, with the bytes of `dtype`
// (F8_E4M3 and U8 held as kByte).
struct StoredTensor {
  std::string suffix;
  DType dtype;
  std::vector<int64_t> shape;
  at::Tensor data;
};

// Quantizes `w` ([out, in], bf16/fp16/fp32) to `format` with the quantizer's amax (one value,
// or one per row for fp8); formats that derive their scales from the weight's blocks ignore
// `amax`. `name` (the checkpoint name of the weight) is used in every error message. Format kNone
// returns the weight itself as "weight". The tensors come in the format's layout order.
std::vector<StoredTensor> quantize_weight(const at::Tensor& w, QuantFormat format,
                                          const std::vector<float>& amax, const std::string& name);

// Dequantizes what quantize_weight produced (found by suffix) back to float32 [rows, cols], on
// the data's device.
at::Tensor dequantize_weight(const std::vector<StoredTensor>& stored, QuantFormat format,
                             int64_t rows, int64_t cols, const std::string& name);

// What a serving engine computes from an activation x [rows, cols] with a static input scale:
// x quantized to `format` and back, float32, for the formats with static activations. fp8:
// e4m3(x / scale) * scale (scale = input_scale); nvfp4: the per-16 dynamic block scales of W4A4
// with global scale `scale` (= input_scale).
at::Tensor fake_quantize(const at::Tensor& x, QuantFormat format, float scale,
                         const std::string& name);

// Finds a stored tensor by suffix; throws naming `name` when absent.
const StoredTensor& find_stored(const std::vector<StoredTensor>& stored, const std::string& suffix,
                                const std::string& name);

}  // namespace moequant
