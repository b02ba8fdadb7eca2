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

// No scale byte is 255 (e8m0's NaN); the error names `name` and the first such scale's index in
// `scales` (any shape, on the CPU or a device), flattened.
void check_mxfp4_scales(const at::Tensor& scales, const std::string& name);

// max |x| over what dequantize_mxfp4 returns, from the codes without decoding them: the largest
// magnitude code of each block (e2m1 magnitudes grow with the code) times the block's scale, in
// bf16, so exactly the decoded tensor's amax (inf where a value overflows bf16). `blocks`
// [rows, nb, 16] and `scales` [rows, nb] on the CPU, any strides (a view of some rows of a fused
// tensor). Errors as dequantize_mxfp4's.
float mxfp4_amax(const at::Tensor& blocks, const at::Tensor& scales, const std::string& name);

}  // namespace moequant
