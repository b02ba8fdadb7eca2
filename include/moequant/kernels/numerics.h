// Exact scalar numerics shared by the CPU reference paths and the CUDA kernels.
//
// Every function here is the single definition of one rounding rule of FORMATS.md; the CPU
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

MQ_HD float abs_f(float x) { return bits_float(float_bits(x) & 0x7fffffffu); }
MQ_HD bool is_finite_f(float x) { return (float_bits(x) & 0x7f800000u) != 0x7f800000u; }

// Round to nearest integer, ties to even (the default IEEE mode; rintf honours it).
MQ_HD float rint_even(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return __builtin_rintf(x);
#endif
}

// ---- 16-bit float inputs -------------------------------------------------------------------

MQ_HD float bf16_to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

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
  if (a < 6.103515625e-05f) {  // below 2^-14: subnormal half, value = k * 2^-24
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
  if (a <= 0.25f) idx = 0;
  else if (a < 0.75f) idx = 1;
  else if (a <= 1.25f) idx = 2;
  else if (a < 1.75f) idx = 3;
  else if (a <= 2.5f) idx = 4;
  else if (a < 3.5f) idx = 5;
  else if (a <= 5.0f) idx = 6;
  else idx = 7;
  return static_cast<uint8_t>(((y < 0.0f) ? 8u : 0u) | idx);
}

MQ_HD float e2m1_to_float(uint8_t code) {
  const uint8_t idx = code & 7u;
  const float mag = idx < 4 ? 0.5f * static_cast<float>(idx)
                            : (idx == 4 ? 2.0f : (idx == 5 ? 3.0f : (idx == 6 ? 4.0f : 6.0f)));
  return (code & 8u) ? -mag : mag;
}

// ---- scale rules -----------------------------------------------------------------------------

constexpr float kNvfp4ScaleProduct = 6.0f * 448.0f;  // 2688, exact
constexpr float kNvfp4MinBlockScale = 0.001953125f;  // 2^-9
constexpr int kNvfp4Block = 16;
constexpr int kFp8Tile = 128;
constexpr int kInt4Group = 128;

MQ_HD float fp8_scale_from_amax(float amax) { return amax == 0.0f ? 1.0f : amax / kE4M3Max; }
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
  if (v > 7.0f) v = 7.0f;
  else if (v < -8.0f) v = -8.0f;
  else if (v != v) v = 0.0f;
  return static_cast<uint32_t>(static_cast<int32_t>(v) + 8);
}

}  // namespace num
}  // namespace moequant
