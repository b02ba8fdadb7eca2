// Experts of an MXFP4 source (GPT-OSS releases; docs/formats.md, "Quantized sources") as the
// bf16 weights they encode: each element e2m1(nibble) * 2^(scale - 127), exactly (the value is
// representable in bf16 for every scale but 255, e8m0's NaN, and the top few that overflow).
// CPU and CUDA give the same bits.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace moequant {

// `blocks` (uint8 [rows, cols/32, 16]: two e2m1 codes a byte, the even element in the low
// nibble) and `scales` (uint8 [rows, cols/32], e8m0) of one matrix, on the CPU or one CUDA device
// (the scales may be on the CPU); returns the bf16 [rows, cols] on the blocks' device. Errors
// name `name`: shapes that disagree, a scale byte 255 (NaN).
at::Tensor dequantize_mxfp4(const at::Tensor& blocks, const at::Tensor& scales,
                            const std::string& name);

}  // namespace moequant
