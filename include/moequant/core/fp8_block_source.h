// A weight of an FP8 block source (DeepSeek-V3/R1 and Kimi-K2 releases; docs/formats.md,
// "Quantized sources") as the bf16 weight it encodes: bf16(float(e4m3 code) * weight_scale_inv of
// its 128x128 block), rounded to nearest even, which is exactly what DeepSeek's own conversion to
// bf16 writes, so that quantizing the FP8 release gives the bytes quantizing its bf16 conversion
// gives. CPU and CUDA give the same bits.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace moequant {

// `codes` ([rows, cols] uint8 e4m3 codes) and `scale_inv` (float32 [ceil(rows/128),
// ceil(cols/128)]) on the CPU or one CUDA device (the scales may be on the CPU); returns the bf16
// weight on the codes' device. Errors name `name` ("...weight_scale_inv"): a scale tensor of the
// wrong shape or dtype, a scale that is not finite and positive.
at::Tensor dequantize_fp8_blocks(const at::Tensor& codes, const at::Tensor& scale_inv,
                                 const std::string& name);

}  // namespace moequant
