// Device fast paths of the rounding rules of numerics.h, bit-identical to them on the inputs
// stated per function (tests/gpu/test_quant_math_gpu.cu checks each one exhaustively or over
// billions of random inputs against numerics.h and IEEE division on the device).
//
// Why these exist: the quantizers are memory-bound only if they spend a few instructions per
// element. numerics.h's portable versions cost ~10 instructions for a float division (MUFU.RCP,
// Newton steps, range check) and ~20 for an e4m3 or e2m1 encoding; here the divisor's reciprocal
// is prepared once per scale, e4m3 uses the hardware converter (two floats per instruction) and
// e2m1 and the int4 codes a few float operations whose single rounding is the rule itself.
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>

#include "moequant/kernels/numerics.h"

namespace moequant {
namespace kernels {
namespace cuda {

// ---- correctly rounded division by a prepared divisor ----------------------------------------
//
// fast_div(a, b, y) with y = __frcp_rn(b) (the correctly rounded reciprocal) returns
// RN(a / b), the IEEE quotient `a / b`, whenever
//   (1) fast_div_ok(b): 2^-60 <= b <= 2^60, and
//   (2) 2^-20 <= |a / b| <= 2^20.
// Proof: it is the iteration CUDA's own div.rn.f32 runs, with an exact reciprocal. q0 = RN(a y)
// is within 1.5 ulp of a/b (y is within half an ulp of 1/b); the first correction makes q1
// faithful (within 1 ulp); then r1 = a - b q1 is exact (it is a multiple of ulp(b) ulp(q1) below
// b ulp(q1) in magnitude, at least 2^-129 apart, so it fits 24 bits, as a subnormal at worst),
// and Markstein's theorem (y within half an ulp of 1/b, q1 faithful, r1 exact) gives
// q2 = RN(q1 + r1 y) = RN(a / b). Under (1) and (2) no step overflows or leaves the ranges used.
// Outside (2), for finite a: |a/b| < 2^-20 gives |q2| < 2^-19 with the sign of a (or +0 for
// a = -0), and |a/b| > 2^20 gives |q2| > 2^19 or NaN (overflow: inf - inf). Every caller below
// either is in (2) by construction or decides its code identically anywhere in those ranges.
__device__ __forceinline__ bool fast_div_ok(float b) {
  return b >= 0x1p-60f && b <= 0x1p60f;  // false for NaN
}
__device__ __forceinline__ float fast_div(float a, float b, float y) {
  const float q0 = __fmul_rn(a, y);
  const float r0 = __fmaf_rn(-b, q0, a);
  const float q1 = __fmaf_rn(r0, y, q0);
  const float r1 = __fmaf_rn(-b, q1, a);
  return __fmaf_rn(r1, y, q1);
}

// ---- e4m3 ------------------------------------------------------------------------------------

// Hardware e4m3 of four floats, element k in byte k. Per byte, bits 0..6 equal those of
// num::float_to_e4m3(x) for every non-NaN float x (round to nearest even, saturating to 448;
// cvt.rn.satfinite); bit 7 is the hardware's sign and must be replaced: see e4m3_with_signs.
__device__ __forceinline__ uint32_t e4m3x4_hw(float x0, float x1, float x2, float x3) {
  uint32_t r;
  // cvt.e4m3x2.f32 d, a, b puts a in the upper byte of d, b in the lower.
  asm("{\n\t.reg .b16 lo, hi;\n\t"
      "cvt.rn.satfinite.e4m3x2.f32 lo, %2, %1;\n\t"
      "cvt.rn.satfinite.e4m3x2.f32 hi, %4, %3;\n\t"
      "mov.b32 %0, {lo, hi};\n\t}"
      : "=r"(r)
      : "f"(x0), "f"(x1), "f"(x2), "f"(x3));
  return r;
}

// Final e4m3 bytes: magnitudes of `hw` (e4m3x4_hw) with bit 7 of each byte of `signs` as sign
// bits (docs/formats.md: the sign is copied from the quotient, whose sign is the input's).
__device__ __forceinline__ uint32_t e4m3_with_signs(uint32_t hw, uint32_t signs) {
  return (hw & 0x7f7f7f7fu) | (signs & 0x80808080u);
}

// Accumulates a NaN marker: a byte 0x7f (NaN) in `hw`'s magnitudes sets bit 7 of that byte.
__device__ __forceinline__ uint32_t e4m3_nan_bits(uint32_t hw) {
  return (hw & 0x7f7f7f7fu) + 0x01010101u;
}

// Sign bits (bit 7 of each byte) of four 16-bit elements held as two pair words.
__device__ __forceinline__ uint32_t signs_of_halves(uint32_t p01, uint32_t p23) {
  return __byte_perm(p01, p23, 0x7531);
}
// ... and of four 32-bit elements.
__device__ __forceinline__ uint32_t signs_of_words(uint32_t w0, uint32_t w1, uint32_t w2,
                                                   uint32_t w3) {
  return __byte_perm(__byte_perm(w0, w1, 0x0073), __byte_perm(w2, w3, 0x0073), 0x5410);
}

// One e4m3 code for a positive finite float (block scales): the hardware converter.
__device__ __forceinline__ uint32_t e4m3_positive_hw(float x) {
  return e4m3x4_hw(x, 0.0f, 0.0f, 0.0f) & 0xffu;
}

// The value of an e4m3 code (low byte of `code`): hardware e4m3 -> f16 -> f32, both exact, equal
// to num::e4m3_to_float for every code but the NaN ones.
__device__ __forceinline__ float e4m3_value_hw(uint32_t code) {
  uint32_t h2;
  asm("{\n\t.reg .b16 c;\n\t"
      "cvt.u16.u32 c, %1;\n\t"
      "cvt.rn.f16x2.e4m3x2 %0, c;\n\t}"
      : "=r"(h2)
      : "r"(code));
  return __half2float(__ushort_as_half(static_cast<unsigned short>(h2 & 0xffffu)));
}

// ---- e2m1 (NVFP4 elements) -------------------------------------------------------------------
//
// The e2m1 index of a = |y| is rint_even(min(2a, 2 + a, 4 + a/2)) clamped to 7: on [0, 2] the
// grid {0, .5, 1, 1.5, 2} is 2a's integers, on [2, 4] {2, 3, 4} are 2 + a's, on [4, 8] {4, 6, 8}
// are 4 + a/2's, and the min picks the right piece; ties to the even integer are ties to the
// even code (0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4). Each piece is one
// correctly rounded operation against the magic constant 1.5 * 2^23 (+4), whose ulp is 1: that
// single rounding is rint_even of the exact value, and rint commutes with min. Result: the float
// 1.5 * 2^23 + idx + 8 * sign, i.e. its bits are 0x4b400000 + code.
constexpr float kE2m1Magic = 12582912.0f;  // 1.5 * 2^23
constexpr uint32_t kE2m1MagicBits = 0x4b400000u;

// Bits 0x4b400000 + code, code = num::float_to_e2m1(y) for every float y other than -0.0
// (whose code is 0, not 8) and NaN: bit 3 is y's sign bit.
__device__ __forceinline__ uint32_t e2m1_code_magic(float y) {
  const float a = fminf(fabsf(y), 6.0f);
  const float t1 = __fmaf_rn(a, 2.0f, kE2m1Magic + 4.0f);
  const float t2 = __fadd_rn(a, kE2m1Magic + 6.0f);
  const float t3 = __fmaf_rn(a, 0.5f, kE2m1Magic + 8.0f);
  const float m = fminf(fminf(t1, t2), t3);  // magic + 4 + idx
  // subtract copysign(4, y): +4 gives magic + idx, -4 gives magic + 8 + idx
  return __float_as_uint(
      __fsub_rn(m, __uint_as_float((__float_as_uint(y) & 0x80000000u) | 0x40800000u)));
}

// ---- int4 (GPTQ) -----------------------------------------------------------------------------

// Bits 0x4b400000 + num::int4_code(w, s) from the quotient q = RN(w / s), for every non-NaN q:
// rint_even(clamp(q, -8, 7)) + 8 (rint commutes with the clamp at integers), the rounding done
// by one addition to 1.5 * 2^23 + 8.
__device__ __forceinline__ uint32_t int4_code_magic(float q) {
  const float c = fminf(fmaxf(q, -8.0f), 7.0f);
  return __float_as_uint(__fadd_rn(c, kE2m1Magic + 8.0f));
}

// ---- float16 ---------------------------------------------------------------------------------

// num::float_to_half(x, overflow) for every float x (NaN included): the hardware conversion,
// with the overflow rule and the +-inf result of numerics.h.
__device__ __forceinline__ uint16_t float_to_half_hw(float x, bool* overflow) {
  uint16_t h = __half_as_ushort(__float2half_rn(x));
  if ((h & 0x7fffu) >= 0x7c00u) {  // inf (|x| >= 65520 or x = +-inf) or NaN
    *overflow = true;
    h = static_cast<uint16_t>(((__float_as_uint(x) >> 16) & 0x8000u) | 0x7c00u);
  }
  return h;
}

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
