// NVFP4 of weights whose values are E2M1 codes times power-of-two scales: an MXFP4 source's
// (GPT-OSS releases). ModelOpt casts MXFP4 to NVFP4 without loss; so does this, block by block,
// where e4m3 can hold the block's scale (docs/formats.md, "NVFP4 from an MXFP4 source"), and
// counts the blocks it had to quantize the ordinary way.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "moequant/core/quantize.h"

namespace moequant {

// weight_scale_2 of such an export: the power of two 2^(g - 8), g the smallest exponent with
// amax <= 6 * 2^g, so the largest block's scale 2^g / weight_scale_2 is 2^8 (1 for amax 0).
float nvfp4_power_of_two_scale2(float amax);

struct Nvfp4FromE2m1 {
  std::vector<StoredTensor> stored;  // nvfp4's layout (quantize_weight's order), on the CPU
  int64_t blocks = 0;                // 16-blocks in all
  int64_t requantized = 0;           // of which stored by the ordinary rule (not exactly)
};

// `w` [out, in], bf16 (on any device; quantized on the CPU), with its quantizer's `amax` (for
// gate and up the shared one, so they share weight_scale_2). Errors name `name`.
Nvfp4FromE2m1 quantize_nvfp4_keeping_e2m1(const at::Tensor& w, float amax, const std::string& name);

}  // namespace moequant
