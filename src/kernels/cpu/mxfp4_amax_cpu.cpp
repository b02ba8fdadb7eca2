// mq_cpu_mxfp4_amax: max |value| of an MXFP4 matrix read from its codes, without decoding it.
//
// e2m1 magnitudes grow with the 3-bit magnitude code, so a block's largest value is its largest
// code times its scale: one byte-wise max over the block's 16 bytes (vectorized: both nibbles'
// magnitude bits, no table), then one lookup of (scale, code) in the decoder's own bf16 values.
// Non-negative floats order as their bits, NaN above Inf, so the maximum is an integer max.
#include <stdint.h>

#include <algorithm>
#include <array>
#include <string>

#include "arg_checks.h"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"
#include "multiversion.h"
#include "status.h"

namespace {

namespace num = moequant::num;
using moequant::kernels::check_not_null;
using moequant::kernels::check_positive_shape;

constexpr int64_t kBlockBytes = num::kMxfp4Block / 2;

// The largest magnitude code (0..7) of the block's 32 nibbles.
MQ_ALWAYS_INLINE uint32_t block_max_code(const uint8_t* __restrict p) {
  uint8_t m = 0;
  for (int k = 0; k < kBlockBytes; ++k) {
    const uint8_t lo = p[k] & 7u, hi = (p[k] >> 4) & 7u;
    m = std::max(m, std::max(lo, hi));
  }
  return m;
}

// Bits of the largest value of one row's nblk blocks.
MQ_CPU_HOT uint32_t row_max_bits(const uint8_t* b, const uint8_t* s, int64_t nblk,
                                 const uint32_t* bits_of) {
  uint32_t best = 0;
  for (int64_t j = 0; j < nblk; ++j)
    best = std::max(best, bits_of[s[j] * 8u + block_max_code(b + j * kBlockBytes)]);
  return best;
}

}  // namespace

extern "C" mq_status mq_cpu_mxfp4_amax(const uint8_t* blocks, const uint8_t* scales, int64_t rows,
                                       int64_t nblk, int64_t pitch, float* amax) {
  const char* fn = "mq_cpu_mxfp4_amax";
  MQ_KRETURN_IF_ERROR(check_not_null(fn, blocks, "blocks"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, scales, "scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, amax, "amax"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, nblk));
  MQ_KCHECK(pitch >= nblk, std::string(fn) + ": pitch " + std::to_string(pitch) + " is below the " +
                               std::to_string(nblk) + " blocks read a row");
  // float32 bits of |mxfp4_to_bf16(code, scale)|: NaN for scale 255, Inf where it overflows.
  static const std::array<uint32_t, 256 * 8> bits_of = [] {
    std::array<uint32_t, 256 * 8> t{};
    for (uint32_t s = 0; s < 256; ++s)
      for (uint32_t c = 0; c < 8; ++c)
        t[s * 8 + c] = static_cast<uint32_t>(
                           num::mxfp4_to_bf16(static_cast<uint8_t>(c), static_cast<uint8_t>(s)))
                       << 16;
    return t;
  }();
  uint32_t best = 0;
#pragma omp parallel for schedule(static) reduction(max : best)
  for (int64_t r = 0; r < rows; ++r)
    best = std::max(best, row_max_bits(blocks + r * pitch * kBlockBytes, scales + r * pitch, nblk,
                                       bits_of.data()));
  *amax = num::bits_float(best);
  return MQ_OK;
}
