// Exact scalar numerics shared by the CPU reference paths and the CUDA kernels.
//
// Every function here is the single definition of one rounding rule of docs/formats.md; the CPU
// code and the CUDA kernels both call these, so both produce the same bytes by construction.
// Pure bit arithmetic plus IEEE float32 operations (no fast-math), no framework headers.
#pragma once

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define MQ_HD __host__ __device__ __forceinline__
#else
#define MQ_HD inline
#endif

namespace moequant {
namespace num {

MQ_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
#endif
}

MQ_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}

MQ_HD float abs_f(float x) {
  return bits_float(float_bits(x) & 0x7fffffffu);
}
MQ_HD bool is_finite_f(float x) {
  return (float_bits(x) & 0x7f800000u) != 0x7f800000u;
}

// Round to nearest integer, ties to even (the default IEEE mode; rintf honours it).
MQ_HD float rint_even(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return __builtin_rintf(x);
#endif
}

// ---- 16-bit float inputs -------------------------------------------------------------------

MQ_HD float bf16_to_float(uint16_t h) {
  return bits_float(static_cast<uint32_t>(h) << 16);
}

// float32 -> bfloat16 bits, round to nearest even, NaN to 0x7fc0: PyTorch's conversion, and the
// one Triton's store makes in DeepSeek's fp8_cast_bf16.py.
MQ_HD uint16_t float_to_bf16(float x) {
  const uint32_t u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

MQ_HD float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    // zero or subnormal: man * 2^-24, exact in float32
    const float mag = static_cast<float>(man) * 5.9604644775390625e-08f;
    return bits_float(float_bits(mag) | sign);
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (man << 13));
  return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
}

// float32 -> float16, round to nearest even. Sets *overflow when the result is not finite
// (|x| >= 65520, or x not finite); the returned bits are then +-inf.
MQ_HD uint16_t float_to_half(float x, bool* overflow) {
  const uint32_t bits = float_bits(x);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const float a = abs_f(x);
  if (!is_finite_f(a) || a >= 65520.0f) {
    *overflow = true;
    return static_cast<uint16_t>(sign | 0x7c00u);
  }
  if (a < 6.103515625e-05f) {                    // below 2^-14: subnormal half, value = k * 2^-24
    const float k = rint_even(a * 16777216.0f);  // exact scaling by 2^24, then RNE
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(k));  // k == 1024 is 2^-14
  }
  const uint32_t abits = float_bits(a);
  uint32_t exp = ((abits >> 23) & 0xffu) - 127u + 15u;
  uint32_t man = abits & 0x7fffffu;
  uint32_t keep = man >> 13;
  const uint32_t rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (keep & 1u))) ++keep;
  if (keep == 0x400u) {
    keep = 0;
    ++exp;
  }
  return static_cast<uint16_t>(sign | (exp << 10) | keep);  // a < 65520 keeps exp <= 30
}

// ---- float8 E4M3 "fn" ----------------------------------------------------------------------

constexpr float kE4M3Max = 448.0f;

// float32 -> e4m3fn, round to nearest even, saturating to +-448; the sign bit is copied from x
// (so -0.0 and negatives that round to zero give 0x80). NaN maps to 0x7f (callers reject NaN).
MQ_HD uint8_t float_to_e4m3(float x) {
  const uint32_t bits = float_bits(x);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  const float a = abs_f(x);
  if (a != a) return static_cast<uint8_t>(sign | 0x7fu);
  if (a >= kE4M3Max) return static_cast<uint8_t>(sign | 0x7eu);
  if (a < 0.015625f) {  // below 2^-6: subnormal e4m3, value = k * 2^-9; k == 8 is 2^-6
    const float k = rint_even(a * 512.0f);
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(k));
  }
  const uint32_t abits = float_bits(a);
  uint32_t exp = ((abits >> 23) & 0xffu) - 127u + 7u;
  uint32_t keep = (abits & 0x7fffffu) >> 20;
  const uint32_t rem = abits & 0xfffffu;
  if (rem > 0x80000u || (rem == 0x80000u && (keep & 1u))) ++keep;
  if (keep == 8u) {
    keep = 0;
    ++exp;
  }
  return static_cast<uint8_t>(sign | (exp << 3) | keep);  // a < 448 keeps this <= 0x7e
}

MQ_HD float e4m3_to_float(uint8_t c) {
  const uint32_t sign = static_cast<uint32_t>(c & 0x80u) << 24;
  const uint32_t exp = (c >> 3) & 0xfu;
  const uint32_t man = c & 0x7u;
  if (exp == 15 && man == 7) return bits_float(sign | 0x7fc00000u);
  if (exp == 0) {
    const float mag = static_cast<float>(man) * 0.001953125f;  // man * 2^-9
    return bits_float(float_bits(mag) | sign);
  }
  return bits_float(sign | ((exp + 120u) << 23) | (man << 20));
}

// ---- float4 E2M1 (NVFP4 elements) ----------------------------------------------------------

// Magnitude index in {0, 0.5, 1, 1.5, 2, 3, 4, 6}, ties to the even index, saturating at 6;
// the code's bit 3 is (y < 0), so -0.0 encodes 0x0 and a small negative encodes 0x8.
MQ_HD uint8_t float_to_e2m1(float y) {
  const float a = abs_f(y);
  uint8_t idx;
  if (a <= 0.25f)
    idx = 0;
  else if (a < 0.75f)
    idx = 1;
  else if (a <= 1.25f)
    idx = 2;
  else if (a < 1.75f)
    idx = 3;
  else if (a <= 2.5f)
    idx = 4;
  else if (a < 3.5f)
    idx = 5;
  else if (a <= 5.0f)
    idx = 6;
  else
    idx = 7;
  return static_cast<uint8_t>(((y < 0.0f) ? 8u : 0u) | idx);
}

MQ_HD float e2m1_to_float(uint8_t code) {
  const uint8_t idx = code & 7u;
  const float mag = idx < 4 ? 0.5f * static_cast<float>(idx)
                            : (idx == 4 ? 2.0f : (idx == 5 ? 3.0f : (idx == 6 ? 4.0f : 6.0f)));
  return (code & 8u) ? -mag : mag;
}

// ---- MXFP4 sources (GPT-OSS releases; docs/formats.md, "Quantized sources") ------------------

constexpr int kMxfp4Block = 32;  // elements sharing one e8m0 scale

// The bf16 bits of e2m1 `code` (sign in bit 3) times 2^(scale - 127), built from the bits, so
// exact wherever bf16 holds the value (every exponent >= -128 does, subnormals included); beyond
// bf16's range it is +-inf, and scale 255 (e8m0's NaN) gives NaN. transformers'
// convert_moe_packed_tensors computes the same value with ldexp in bf16.
MQ_HD uint16_t mxfp4_to_bf16(uint8_t code, uint8_t scale) {
  const uint16_t sign = (code & 8u) ? 0x8000u : 0u;
  const uint32_t idx = code & 7u;
  if (scale == 255u) return 0x7fc0u;
  if (idx == 0u) return sign;
  // e2m1 magnitudes 0.5, 1, 1.5, 2, 3, 4, 6 = (1 + half / 2) * 2^e
  const int e = idx == 1u ? -1 : static_cast<int>(idx / 2u) - 1;
  const uint32_t half = (idx >= 2u && (idx & 1u)) ? 1u : 0u;
  const int exp = e + static_cast<int>(scale) - 127;  // >= -128
  const int field = exp + 127;
  if (field >= 255) return static_cast<uint16_t>(sign | 0x7f80u);
  if (field >= 1)
    return static_cast<uint16_t>(sign | (static_cast<uint32_t>(field) << 7) | (half << 6));
  // Subnormal: (2 + half) * 2^(exp - 1) = k * 2^-133 with k < 128.
  return static_cast<uint16_t>(sign | ((2u + half) << (exp + 132)));
}

// ---- scale rules -----------------------------------------------------------------------------

constexpr float kNvfp4ScaleProduct = 6.0f * 448.0f;  // 2688, exact
constexpr float kNvfp4MinBlockScale = 0.001953125f;  // 2^-9
constexpr int kNvfp4Block = 16;
constexpr int kFp8Tile = 128;
constexpr int kInt4Group = 128;

MQ_HD float fp8_scale_from_amax(float amax) {
  return amax == 0.0f ? 1.0f : amax / kE4M3Max;
}
MQ_HD float nvfp4_scale2_from_amax(float amax) {
  return amax == 0.0f ? 1.0f : amax / kNvfp4ScaleProduct;
}

// The e4m3 byte of one NVFP4 block scale, from the block's max |w| and weight_scale_2.
MQ_HD uint8_t nvfp4_block_scale(float block_amax, float scale2) {
  float s = block_amax / (6.0f * scale2);
  if (s == 0.0f) s = 1.0f;
  if (s < kNvfp4MinBlockScale) s = kNvfp4MinBlockScale;
  if (s > kE4M3Max) s = kE4M3Max;
  return float_to_e4m3(s);
}

// INT4 (GPTQ v1): nibble 0..15 for w divided by the stored fp16 scale. A NaN quotient (only
// possible when a scale underflowed to fp16 zero) maps to the zero point, so CPU and GPU agree.
MQ_HD uint32_t int4_code(float w, float stored_scale) {
  float v = rint_even(w / stored_scale);
  if (v > 7.0f)
    v = 7.0f;
  else if (v < -8.0f)
    v = -8.0f;
  else if (v != v)
    v = 0.0f;
  return static_cast<uint32_t>(static_cast<int32_t>(v) + 8);
}

// ---- branch-free variants, for loops that the compiler vectorizes ---------------------------
//
// Each `*_simd` function returns exactly what its counterpart above returns, for every input
// (tests/unit/kernels/test_numerics.cpp compares them exhaustively or over dense sweeps). They
// use only integer arithmetic, IEEE float32 add/subtract (exact or correctly rounded: the same
// on every target), comparisons and mask selects: no branches, and no division except where the
// rule itself divides (a true division, as in the scalar function), so a loop that calls them
// vectorizes (g++ -O3, plain SSE2 included). Where a float operation feeds a select, the select
// is written as masks (`select_bits`) rather than `?:`: with -ftrapping-math (the default) g++
// will not execute a float operation that it has sunk into one arm of a branch unconditionally,
// and would leave the loop scalar (plain min / max patterns, which it recognizes first, are
// safe as `?:`).

// c ? a : b, as masks.
MQ_HD uint32_t select_bits(bool c, uint32_t a, uint32_t b) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return (a & m) | (b & ~m);
}

// half_to_float for every 16-bit pattern.
MQ_HD float half_to_float_simd(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7fffu;  // exponent and mantissa
  const uint32_t shifted = em << 13;
  // normal: exponent rebiased by 127 - 15 = 112; inf / NaN: exponent 31 -> 255, payload kept
  const uint32_t big = select_bits(em >= 0x7c00u, shifted + (224u << 23), shifted + (112u << 23));
  // zero / subnormal: 2^-14 * (1 + man/1024) - 2^-14 = man * 2^-24, exact (Sterbenz)
  const float sub = bits_float(shifted + (113u << 23)) - 6.103515625e-05f;
  return bits_float(select_bits(em < 0x400u, float_bits(sub), big) | sign);
}

// float_to_half for every float32, in a 32-bit word (see float_to_e4m3_simd): the same bits, and
// (result & 0x7fff) == 0x7c00 exactly where float_to_half reports overflow (|x| >= 65520, or x
// not finite; the bits are then +-inf, as there).
MQ_HD uint32_t float_to_half_simd(float x) {
  const uint32_t bits = float_bits(x);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t abits = bits & 0x7fffffffu;
  const int32_t ia = static_cast<int32_t>(abits);
  // |x| >= 2^-14: keep 10 mantissa bits, rounded to nearest even by integer addition, exponent
  // rebiased from 127 to 15; at or above 65520 (the tie above 65504), inf and NaN: +-inf.
  const int32_t rounded = static_cast<int32_t>((abits + 0xfffu + ((abits >> 13) & 1u)) >> 13);
  const int32_t normal = rounded - (112 << 10) < 0x7c00 ? rounded - (112 << 10) : 0x7c00;
  // |x| < 2^-14: k * 2^-24, k = rint(|x| * 2^24) (1024 is 2^-14). 0.5 has an ulp of 2^-24, so
  // adding it rounds |x| to the nearest multiple of 2^-24, ties to even.
  const uint32_t sub = float_bits(bits_float(abits) + 0.5f) - 0x3f000000u;
  return select_bits(ia < 0x38800000, sub, static_cast<uint32_t>(normal)) | sign;
}

// float_to_e4m3 for every float32 (NaN included). The code is returned in a 32-bit word, the
// width of the float lanes it is computed in: a loop that narrows to bytes in a separate pass
// vectorizes to far fewer instructions than one that makes g++ mix lane widths.
MQ_HD uint32_t float_to_e4m3_simd(float x) {
  const uint32_t bits = float_bits(x);
  const uint32_t sign = (bits >> 24) & 0x80u;
  const uint32_t abits = bits & 0x7fffffffu;
  const int32_t ia = static_cast<int32_t>(abits);
  // |x| >= 2^-6: keep 3 mantissa bits, rounded to nearest even by integer addition (a carry moves
  // into the exponent), exponent rebiased from 127 to 7; anything at or above 448 saturates.
  const int32_t rounded = static_cast<int32_t>((abits + 0x7ffffu + ((abits >> 20) & 1u)) >> 20);
  const int32_t normal = rounded - (120 << 3) < 0x7e ? rounded - (120 << 3) : 0x7e;
  // |x| < 2^-6: the code is k with |x| ~ k * 2^-9. 2^14 has an ulp of 2^-9, so adding it rounds
  // |x| to the nearest multiple of 2^-9, ties to even, and k is what the sum's bits gained.
  const uint32_t sub = float_bits(bits_float(abits) + 16384.0f) - 0x46800000u;
  uint32_t code = select_bits(ia < 0x3c800000, sub, static_cast<uint32_t>(normal));
  code = select_bits(ia > 0x7f800000, 0x7fu, code);  // NaN
  return code | sign;
}

// e4m3_to_float for every code.
MQ_HD float e4m3_to_float_simd(uint8_t c) {
  const uint32_t sign = static_cast<uint32_t>(c & 0x80u) << 24;
  const uint32_t m = c & 0x7fu;  // exponent and mantissa
  // subnormal (exponent 0): 2^-6 * (1 + man/8) - 2^-6 = man * 2^-9, exact
  const float sub = bits_float((m << 20) + (121u << 23)) - 0.015625f;
  // normal: exponent rebiased by 127 - 7 = 120
  uint32_t mag = select_bits(m < 8u, float_bits(sub), (m << 20) + (120u << 23));
  mag = select_bits(m == 0x7fu, 0x7fc00000u, mag);
  return bits_float(mag | sign);
}

// float_to_e2m1 for every float32 (NaN included: index 7, positive), in a 32-bit word as above.
// e2m1 is a float format with 1 mantissa bit, exponent bias 1 and subnormal 0.5, so the index is
// computed as float_to_e4m3_simd computes its code; a NaN or anything above 5 gives index 7.
MQ_HD uint32_t float_to_e2m1_simd(float y) {
  const uint32_t abits = float_bits(y) & 0x7fffffffu;
  // |y| >= 1: 1 mantissa bit, rounded to nearest even by integer addition, exponent 127 -> 1
  const int32_t normal =
      static_cast<int32_t>((abits + 0x1fffffu + ((abits >> 22) & 1u)) >> 22) - (126 << 1);
  // |y| < 1: index rint(2 |y|) (0, 1 or 2); 2^22 has an ulp of 0.5, so adding it rounds |y| to
  // the nearest multiple of 0.5, ties to even. Computed on min(|y|, 1), where it gives 2, no
  // more than `normal` from 1 on; below 1 `normal` is at most this index, so the max picks it.
  const uint32_t clamped = abits < 0x3f800000u ? abits : 0x3f800000u;
  const int32_t sub =
      static_cast<int32_t>(float_bits(bits_float(clamped) + 4194304.0f)) - 0x4a800000;
  int32_t idx = sub > normal ? sub : normal;
  idx = idx < 7 ? idx : 7;  // saturation at 6, inf and NaN
  return static_cast<uint32_t>((static_cast<int32_t>(y < 0.0f) << 3) | idx);
}

// e2m1_to_float for every code.
MQ_HD float e2m1_to_float_simd(uint8_t code) {
  const uint32_t idx = code & 7u;
  // idx >= 2: exponent field idx >> 1 (1..3) and mantissa bit idx & 1, 2^(e-1) * (1 + m/2);
  // idx 1 is 0.5 (bits 0x3f000000), idx 0 is 0
  const uint32_t mag = select_bits(idx < 2u, idx * 0x3f000000u, (idx << 22) + (126u << 23));
  return bits_float(mag | (static_cast<uint32_t>(code & 8u) << 28));
}

// The int4 nibble from the quotient q = w / stored_scale: int4_code(w, s) equals
// int4_code_quotient_simd(w / s) for every w and s.
MQ_HD uint32_t int4_code_quotient_simd(float q) {
  uint32_t v = select_bits(q > 7.0f, 0x40e00000u, float_bits(q));  // 7.0f
  v = select_bits(q < -8.0f, 0xc1000000u, v);                      // -8.0f
  v = select_bits(q != q, 0u, v);                                  // NaN -> the zero point
  // v in [-8, 7]: 1.5 * 2^23 + 8 is even and has an ulp of 1, so the sum rounds v to the
  // nearest integer, ties to even, and its bits exceed those of 1.5 * 2^23 by rint(v) + 8.
  return float_bits(bits_float(v) + 12582920.0f) - 0x4b400000u;
}

// nvfp4_block_scale for every block_amax and scale2, in a 32-bit word as above.
MQ_HD uint32_t nvfp4_block_scale_simd(float block_amax, float scale2) {
  const float s = block_amax / (6.0f * scale2);
  uint32_t b = select_bits(s == 0.0f, 0x3f800000u, float_bits(s));  // 1.0f
  b = select_bits(bits_float(b) < kNvfp4MinBlockScale, float_bits(kNvfp4MinBlockScale), b);
  b = select_bits(bits_float(b) > kE4M3Max, float_bits(kE4M3Max), b);
  return float_to_e4m3_simd(bits_float(b));
}

}  // namespace num
}  // namespace moequant
