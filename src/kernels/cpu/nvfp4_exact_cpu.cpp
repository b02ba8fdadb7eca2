// mq_cpu_quantize_nvfp4_exact: NVFP4 that keeps every value already of the form
// e2m1 * 2^g (an MXFP4 source's weights) exactly, where e4m3 can hold the block scale.
//
// With weight_scale_2 a power of two P, a 16-block whose values are all e2m1 codes times 2^g is
// stored losslessly with block scale 2^g / P (exact in e4m3 for 2^-9 .. 2^8): each value divided
// by 2^g is its code again. g is the smallest exponent with amax <= 6 * 2^g, or up to three
// above it (a block whose codes all fit a coarser grid); the first that represents all 16 values
// wins, so the choice depends on the values alone (any layout, any reader of the same weights).
// Other blocks (block scale out of e4m3's range, or values of no such form) take the ordinary
// NVFP4 rule with the same P, and are counted.
#include <stdint.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "arg_checks.h"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"
#include "multiversion.h"
#include "status.h"

namespace {

namespace num = moequant::num;
constexpr int kBlock = num::kNvfp4Block;
constexpr int kMinScaleExp = -9, kMaxScaleExp = 8;  // powers of two e4m3 holds exactly

// The scalar rule (any bf16 values, subnormals included): candidates g = g0 .. g0 + 3, where g0
// is the smallest exponent with amax <= 6 * 2^g; the first whose block scale e4m3 holds and for
// which every value / 2^g is an e2m1 value. Returns the exponent, or kNoExponent.
constexpr int kNoExponent = 1 << 20;

int exact_exponent_scalar(const uint16_t* w, int p2) {
  float v[kBlock], amax = 0.0f;
  for (int i = 0; i < kBlock; ++i) {
    v[i] = num::bf16_to_float(w[i]);
    amax = std::max(amax, std::fabs(v[i]));
  }
  if (!(amax > 0.0f) || !std::isfinite(amax)) return kNoExponent;
  int g = std::ilogb(amax) - 2;  // 6 * 2^g < amax for this start; step up to the first >=
  while (std::ldexp(6.0f, g) < amax) ++g;
  for (int k = 0; k < 4; ++k, ++g) {
    if (g - p2 < kMinScaleExp || g - p2 > kMaxScaleExp) continue;
    bool exact = true;
    for (int i = 0; i < kBlock && exact; ++i) {
      const float x = std::ldexp(v[i], -g);
      // (a nonzero value scaled below float's range would pass as a code 0: it is not exact)
      exact = num::e2m1_to_float(num::float_to_e2m1(x)) == x && (x != 0.0f || v[i] == 0.0f);
    }
    if (exact) return g;
  }
  return kNoExponent;
}

// The same rule from the bits, for blocks of normal bf16 values (all but a rare few): a value
// (1 + m/2) * 2^E with at most the top mantissa bit m is code * 2^g exactly for E - g in
// {0, 1, 2}, or -1 when m = 0 (0.5), so the candidates that work are g0 = Emax - 2 up to the
// smallest E + 1 - m; any other value is on no e2m1 grid. Returns kNoExponent, or -kNoExponent
// when the block needs the scalar rule (a subnormal, Inf or NaN in it).
MQ_ALWAYS_INLINE int exact_exponent(const uint16_t* __restrict w, int p2) {
  // Branch-free unsigned 16-bit lanes (vectorized): the largest exponent field, the smallest
  // E + 1 - m over nonzero values (a zero counts as 0xffff), and flags for a zero block, a
  // subnormal / Inf / NaN, and mantissa bits below the top one.
  uint16_t emax = 0, gmin = 0xffff, any = 0, special = 0, odd = 0;
  for (int i = 0; i < kBlock; ++i) {
    const uint16_t m = w[i] & 0x7fffu, e = static_cast<uint16_t>(m >> 7);
    const uint16_t zero = static_cast<uint16_t>(0u - static_cast<uint16_t>(m == 0));
    any |= m;
    special |= static_cast<uint16_t>(0u - static_cast<uint16_t>((e == 0) | (e == 0xff))) & ~zero;
    odd |= m & 0x3fu;
    emax = e > emax ? e : emax;
    const uint16_t top = static_cast<uint16_t>((e + 1 - ((m >> 6) & 1)) | zero);
    gmin = top < gmin ? top : gmin;
  }
  if (any == 0) return kNoExponent;
  if (special) return -kNoExponent;
  if (odd) return kNoExponent;
  const int g0 = emax - 127 - 2;
  const int lo = std::max(g0, p2 + kMinScaleExp);
  const int hi = std::min({g0 + 3, static_cast<int>(gmin) - 127, p2 + kMaxScaleExp});
  return lo <= hi ? lo : kNoExponent;
}

// The e4m3 byte of 2^k, k in [kMinScaleExp, kMaxScaleExp].
uint8_t power_of_two_e4m3(int k) {
  static const auto table = [] {
    std::array<uint8_t, kMaxScaleExp - kMinScaleExp + 1> t{};
    for (int j = kMinScaleExp; j <= kMaxScaleExp; ++j)
      t[j - kMinScaleExp] = num::float_to_e4m3(std::ldexp(1.0f, j));
    return t;
  }();
  return table[k - kMinScaleExp];
}

// A block outside the bit path (a subnormal, Inf or NaN in it, or not exact): the scalar rule,
// else the ordinary NVFP4 rule (an all-zero block lands there: its codes 0 are exact). Returns
// true when stored exactly.
bool encode_block_slow(const uint16_t* w, int g, int p2, float scale2, uint8_t* scale_byte,
                       uint8_t* packed) {
  uint8_t code[kBlock];
  bool exact = true;
  if (g == -kNoExponent && (g = exact_exponent_scalar(w, p2)) != kNoExponent) {
    *scale_byte = power_of_two_e4m3(g - p2);
    for (int i = 0; i < kBlock; ++i)
      code[i] = num::float_to_e2m1(std::ldexp(num::bf16_to_float(w[i]), -g));
  } else {
    float amax = 0.0f;
    for (int i = 0; i < kBlock; ++i) amax = std::max(amax, std::fabs(num::bf16_to_float(w[i])));
    *scale_byte = num::nvfp4_block_scale(amax, scale2);
    const float d = num::e4m3_to_float(*scale_byte) * scale2;
    for (int i = 0; i < kBlock; ++i) code[i] = num::float_to_e2m1(num::bf16_to_float(w[i]) / d);
    exact = amax == 0.0f;
  }
  for (int j = 0; j < kBlock / 2; ++j)
    packed[j] = static_cast<uint8_t>(code[2 * j] | (code[2 * j + 1] << 4));
  return exact;
}

// Blocks [b_begin, b_end), in stripes of kStripe blocks: each block's exponent (bit path), then
// every element's code from the bits in one flat loop and the packing in another (both
// vectorized), then the few blocks the bit path did not take, again. Returns how many blocks
// were not stored exactly.
MQ_CPU_HOT int64_t encode_blocks(const uint16_t* w, int p2, float scale2, int64_t b_begin,
                                 int64_t b_end, uint8_t* packed, uint8_t* block_scales) {
  constexpr int kStripe = 64;
  int g[kStripe];
  uint16_t shift[kStripe * kBlock];
  uint8_t code[kStripe * kBlock];
  int64_t requantized = 0;
  for (int64_t s = b_begin; s < b_end; s += kStripe) {
    const int nb = static_cast<int>(std::min<int64_t>(kStripe, b_end - s));
    const uint16_t* src = w + s * kBlock;
    for (int b = 0; b < nb; ++b) {
      g[b] = exact_exponent(src + b * kBlock, p2);
      const bool fast = g[b] != kNoExponent && g[b] != -kNoExponent;
      block_scales[s + b] = fast ? power_of_two_e4m3(g[b] - p2) : 0;
      // er1 = E - g + 1 in 0..3 for every nonzero value (mod 2^16): index 2 er1 + m, or 1 at 0.
      const uint16_t sh = static_cast<uint16_t>(fast ? 1 - 127 - g[b] : 0);
      for (int i = 0; i < kBlock; ++i) shift[b * kBlock + i] = sh;
    }
    for (int i = 0; i < nb * kBlock; ++i) {
      const uint16_t m = src[i] & 0x7fffu;
      const uint16_t er1 = static_cast<uint16_t>((m >> 7) + shift[i]), mb = (m >> 6) & 1u;
      const uint16_t idx = static_cast<uint16_t>(2 * er1 + mb + (er1 == 0));
      const uint16_t nonzero = static_cast<uint16_t>(0u - static_cast<uint16_t>(m != 0));
      code[i] = static_cast<uint8_t>((idx | ((src[i] >> 12) & 8u)) & nonzero);
    }
    uint8_t* dst = packed + s * (kBlock / 2);
    for (int j = 0; j < nb * kBlock / 2; ++j)
      dst[j] = static_cast<uint8_t>(code[2 * j] | (code[2 * j + 1] << 4));
    for (int b = 0; b < nb; ++b)
      if (g[b] == kNoExponent || g[b] == -kNoExponent)
        requantized += !encode_block_slow(src + b * kBlock, g[b], p2, scale2, block_scales + s + b,
                                          dst + b * (kBlock / 2));
  }
  return requantized;
}

}  // namespace

extern "C" mq_status mq_cpu_quantize_nvfp4_exact(const uint16_t* w, int64_t rows, int64_t cols,
                                                 float scale2, uint8_t* packed,
                                                 uint8_t* block_scales,
                                                 int64_t* requantized_blocks) {
  const char* fn = "mq_cpu_quantize_nvfp4_exact";
  using namespace moequant::kernels;
  MQ_KRETURN_IF_ERROR(check_not_null(fn, w, "w"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, packed, "packed"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, block_scales, "block_scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, requantized_blocks, "requantized_blocks"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  MQ_KRETURN_IF_ERROR(check_multiple(fn, "cols", cols, kBlock, rows, cols));
  int p2 = 0;
  const bool power_of_two =
      std::isfinite(scale2) && scale2 > 0.0f && std::frexp(scale2, &p2) == 0.5f;
  MQ_KCHECK(power_of_two,
            std::string(fn) + ": scale2 must be a power of two, got " + std::to_string(scale2));
  p2 -= 1;  // scale2 = 2^p2
  const int64_t blocks = rows * cols / kBlock;
  constexpr int64_t kChunk = 4096;  // blocks per unit of parallel work
  const int64_t chunks = (blocks + kChunk - 1) / kChunk;
  int64_t requantized = 0;
#pragma omp parallel for schedule(static) reduction(+ : requantized)
  for (int64_t c = 0; c < chunks; ++c)
    requantized += encode_blocks(w, p2, scale2, c * kChunk, std::min(blocks, (c + 1) * kChunk),
                                 packed, block_scales);
  *requantized_blocks = requantized;
  return MQ_OK;
}
