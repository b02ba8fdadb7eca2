// numerics.h (the scalar rounding rules shared by the CPU and CUDA kernels) against the
// independent reference, exhaustively where the domain is small and densely elsewhere.
#include <gtest/gtest.h>
#include <stdint.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "moequant/kernels/numerics.h"
#include "reference_formats.h"

namespace {

namespace num = moequant::num;

float next_up(float x) {
  return std::nextafter(x, std::numeric_limits<float>::infinity());
}
float next_down(float x) {
  return std::nextafter(x, -std::numeric_limits<float>::infinity());
}

// x, its neighbours one ulp away, and the negatives of all three.
std::vector<float> with_neighbours(float x) {
  return {x, next_up(x), next_down(x), -x, -next_up(x), -next_down(x)};
}

void expect_e4m3_matches(float x) {
  ASSERT_EQ(num::float_to_e4m3(x), ref::e4m3_code(x))
      << "x = " << x << " (bits 0x" << std::hex << ref::bits_of(x) << ")";
}

TEST(NumericsE4M3, DecodesAll256Codes) {
  for (int c = 0; c < 256; ++c) {
    const double want = ref::e4m3_value(static_cast<uint8_t>(c));
    const float got = num::e4m3_to_float(static_cast<uint8_t>(c));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << "code " << c;
    } else {
      EXPECT_EQ(ref::bits_of(got), ref::bits_of(static_cast<float>(want))) << "code " << c;
    }
  }
  EXPECT_EQ(ref::bits_of(num::e4m3_to_float(0x80)), 0x80000000u);  // -0.0
  EXPECT_EQ(num::e4m3_to_float(0x7e), 448.0f);
  EXPECT_EQ(num::e4m3_to_float(0x01), std::ldexp(1.0f, -9));
}

TEST(NumericsE4M3, EncodesEveryCodeValueMidpointAndNeighbour) {
  // Every representable value, every midpoint between neighbours (a tie), and one ulp either
  // side of each, in both signs.
  for (int c = 0; c < 0x7e; ++c) {
    const double lo = ref::e4m3_value(static_cast<uint8_t>(c));
    const double hi = ref::e4m3_value(static_cast<uint8_t>(c + 1));
    for (float x : with_neighbours(static_cast<float>(lo))) expect_e4m3_matches(x);
    const float mid = static_cast<float>((lo + hi) / 2);  // exact in float
    ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
    for (float x : with_neighbours(mid)) expect_e4m3_matches(x);
  }
}

TEST(NumericsE4M3, TiesGoToTheEvenMantissa) {
  EXPECT_EQ(num::float_to_e4m3(1.0625f), 0x38);  // between 1.0 (0x38) and 1.125 (0x39)
  EXPECT_EQ(num::float_to_e4m3(1.1875f), 0x3a);  // between 1.125 and 1.25 (0x3a)
  EXPECT_EQ(num::float_to_e4m3(432.0f), 0x7e);   // between 416 and 448
  EXPECT_EQ(num::float_to_e4m3(std::ldexp(1.0f, -10)), 0x00);   // half of the smallest
  EXPECT_EQ(num::float_to_e4m3(std::ldexp(3.0f, -10)), 0x02);   // 1.5 * 2^-9
  EXPECT_EQ(num::float_to_e4m3(-std::ldexp(1.0f, -10)), 0x80);  // negative, rounds to -0
}

TEST(NumericsE4M3, SaturatesSignedZerosAndSpecials) {
  const float inf = std::numeric_limits<float>::infinity();
  for (float x : {448.0f, 449.0f, 464.0f, 480.0f, 1e6f, 3.4e38f, inf}) {
    EXPECT_EQ(num::float_to_e4m3(x), 0x7e) << x;
    EXPECT_EQ(num::float_to_e4m3(-x), 0xfe) << x;
    expect_e4m3_matches(x);
  }
  EXPECT_EQ(num::float_to_e4m3(0.0f), 0x00);
  EXPECT_EQ(num::float_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(num::float_to_e4m3(1e-30f), 0x00);
  EXPECT_EQ(num::float_to_e4m3(-1e-30f), 0x80);
  EXPECT_EQ(num::float_to_e4m3(ref::float_of(1u)), 0x00);  // smallest float32 subnormal
}

TEST(NumericsE4M3, RandomBitPatternsAndMagnitudes) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 1000000; ++i) {
    const float x = ref::float_of(bits(rng));
    if (std::isnan(x)) continue;
    expect_e4m3_matches(x);
  }
  // Concentrated on e4m3's own range, where the rounding happens.
  std::uniform_real_distribution<float> exponent(-12.0f, 9.5f);
  for (int i = 0; i < 1000000; ++i) {
    const float x = std::exp2(exponent(rng)) * ((i & 1) ? -1.0f : 1.0f);
    expect_e4m3_matches(x);
  }
}

TEST(NumericsE2M1, DecodesAll16Codes) {
  for (int c = 0; c < 16; ++c) {
    EXPECT_EQ(ref::bits_of(num::e2m1_to_float(static_cast<uint8_t>(c))),
              ref::bits_of(ref::e2m1_value(static_cast<uint8_t>(c))))
        << "code " << c;
  }
}

TEST(NumericsE2M1, TiesSaturationAndSigns) {
  const float ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  const uint8_t want[] = {0, 2, 2, 4, 4, 6, 6};  // to the even index
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(num::float_to_e2m1(ties[i]), want[i]) << ties[i];
    EXPECT_EQ(num::float_to_e2m1(-ties[i]), want[i] | 8) << -ties[i];
    EXPECT_EQ(ref::e2m1_code(ties[i]), want[i]) << ties[i];  // the reference agrees
  }
  EXPECT_EQ(num::float_to_e2m1(0.0f), 0x0);
  EXPECT_EQ(num::float_to_e2m1(-0.0f), 0x0);  // -0.0 is not < 0
  EXPECT_EQ(num::float_to_e2m1(-0.1f), 0x8);  // negative rounding to zero
  EXPECT_EQ(num::float_to_e2m1(6.5f), 0x7);
  EXPECT_EQ(num::float_to_e2m1(-1e9f), 0xf);
  EXPECT_EQ(num::float_to_e2m1(std::numeric_limits<float>::infinity()), 0x7);
}

TEST(NumericsE2M1, MidpointNeighboursAndRandom) {
  for (int i = 0; i < 7; ++i) {
    const double lo = ref::kE2m1Magnitudes[i], hi = ref::kE2m1Magnitudes[i + 1];
    for (float x : with_neighbours(static_cast<float>((lo + hi) / 2))) {
      ASSERT_EQ(num::float_to_e2m1(x), ref::e2m1_code(x)) << x;
    }
    for (float x : with_neighbours(static_cast<float>(lo))) {
      ASSERT_EQ(num::float_to_e2m1(x), ref::e2m1_code(x)) << x;
    }
  }
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> y(-8.0f, 8.0f);
  for (int i = 0; i < 1000000; ++i) {
    const float x = y(rng);
    ASSERT_EQ(num::float_to_e2m1(x), ref::e2m1_code(x)) << x;
  }
}

TEST(NumericsHalf, DecodesAll65536Codes) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float want = ref::f16_value(static_cast<uint16_t>(h));
    const float got = num::half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(ref::bits_of(got), ref::bits_of(want)) << "half 0x" << std::hex << h;
    }
  }
}

void expect_half_matches(float x) {
  bool overflow = false;
  const uint16_t got = num::float_to_half(x, &overflow);
  const uint16_t want = ref::f16_bits(x);
  if (std::isnan(x)) {
    ASSERT_TRUE(overflow);
    return;
  }
  ASSERT_EQ(overflow, !ref::f16_is_finite(want)) << x;
  ASSERT_EQ(got, want) << "x = " << x << " (bits 0x" << std::hex << ref::bits_of(x) << ")";
}

TEST(NumericsHalf, EncodesADenseSweepOfFloat32) {
  // Every 97th float32 bit pattern (44 million values, all exponents, both signs).
  for (uint64_t b = 0; b <= 0xffffffffull; b += 97) {
    expect_half_matches(ref::float_of(static_cast<uint32_t>(b)));
  }
}

TEST(NumericsHalf, EncodesEveryMidpointAndNeighbour) {
  for (uint32_t h = 0; h < 0x7c00u; ++h) {
    const float lo = ref::f16_value(static_cast<uint16_t>(h));
    const float hi = ref::f16_value(static_cast<uint16_t>(h + 1));  // 0x7c00 is +inf
    const double mid = (static_cast<double>(lo) + hi) / 2;
    for (float x : with_neighbours(lo)) expect_half_matches(x);
    if (std::isfinite(hi)) {
      for (float x : with_neighbours(static_cast<float>(mid))) expect_half_matches(x);
    }
  }
  bool overflow = false;
  EXPECT_EQ(num::float_to_half(65504.0f, &overflow), 0x7bff);
  EXPECT_FALSE(overflow);
  EXPECT_EQ(num::float_to_half(65519.996f, &overflow), 0x7bff);
  EXPECT_FALSE(overflow);
  num::float_to_half(65520.0f, &overflow);  // the tie above the max rounds to infinity
  EXPECT_TRUE(overflow);
  overflow = false;
  num::float_to_half(-std::numeric_limits<float>::infinity(), &overflow);
  EXPECT_TRUE(overflow);
  overflow = false;
  num::float_to_half(std::nanf(""), &overflow);
  EXPECT_TRUE(overflow);
}

TEST(NumericsBf16, DecodesAll65536Codes) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float got = num::bf16_to_float(static_cast<uint16_t>(h));
    const float want = ref::bf16_value(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got));
    } else {
      ASSERT_EQ(got, want) << h;
    }
  }
}

TEST(NumericsScaleRules, Nvfp4BlockScaleFollowsTheFormula) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exponent(-40.0f, 20.0f);
  for (int i = 0; i < 200000; ++i) {
    const float block_amax = (i % 97 == 0) ? 0.0f : std::exp2(exponent(rng));
    const float scale2 = std::exp2(exponent(rng) / 2);
    float s = block_amax / (6.0f * scale2);
    if (s == 0.0f) s = 1.0f;
    s = std::min(std::max(s, std::ldexp(1.0f, -9)), 448.0f);
    ASSERT_EQ(num::nvfp4_block_scale(block_amax, scale2), ref::e4m3_code(s))
        << block_amax << " " << scale2;
  }
}

TEST(NumericsScaleRules, Int4CodeRoundsHalfToEvenAndClamps) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> v(-9.0f, 9.0f);
  for (int i = 0; i < 200000; ++i) {
    const float w = (i % 3 == 0) ? std::round(v(rng) * 2) / 2 : v(rng);  // many exact .5 ties
    ASSERT_EQ(num::int4_code(w, 1.0f), static_cast<uint32_t>(ref::int4_level(w, 1.0f) + 8)) << w;
  }
  EXPECT_EQ(num::int4_code(0.5f, 1.0f), 8u);
  EXPECT_EQ(num::int4_code(1.5f, 1.0f), 10u);
  EXPECT_EQ(num::int4_code(-2.5f, 1.0f), 6u);
  EXPECT_EQ(num::int4_code(0.0f, 0.0f), 8u);   // 0/0
  EXPECT_EQ(num::int4_code(1.0f, 0.0f), 15u);  // +inf clamps to 7
  EXPECT_EQ(num::int4_code(-1.0f, 0.0f), 0u);  // -inf clamps to -8
}

TEST(NumericsScaleRules, TensorScales) {
  EXPECT_EQ(num::fp8_scale_from_amax(0.0f), 1.0f);
  EXPECT_EQ(num::fp8_scale_from_amax(448.0f), 1.0f);
  EXPECT_EQ(num::fp8_scale_from_amax(3.0f), 3.0f / 448.0f);
  EXPECT_EQ(num::nvfp4_scale2_from_amax(0.0f), 1.0f);
  EXPECT_EQ(num::nvfp4_scale2_from_amax(2688.0f), 1.0f);
  EXPECT_EQ(num::nvfp4_scale2_from_amax(5.0f), 5.0f / 2688.0f);
}

// ---- the branch-free *_simd variants equal the scalar definitions --------------------------
//
// The decoders over every code; the encoders over (a) every float32 whose low 13 bits are one of
// 0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, with all 2^19 patterns of the high bits (sign, exponent
// and the mantissa bits that every rounding here keeps or tests: so every representable value,
// every midpoint, and their neighbours one ulp away, of e4m3, e2m1, fp16 and the integers and
// half-integers of int4), and (b) every 61st float32 bit pattern (70 million, NaN included).
// The full 2^32 sweep of all four encoders also passes; it takes minutes, too long for a unit
// test.

void expect_simd_encoders_match(uint32_t b) {
  const float x = ref::float_of(b);
  ASSERT_EQ(num::float_to_e4m3_simd(x), num::float_to_e4m3(x)) << "bits 0x" << std::hex << b;
  ASSERT_EQ(num::float_to_e2m1_simd(x), num::float_to_e2m1(x)) << "bits 0x" << std::hex << b;
  ASSERT_EQ(num::int4_code_quotient_simd(x), num::int4_code(x, 1.0f)) << "bits 0x" << std::hex << b;
  bool overflow = false;
  const uint16_t h = num::float_to_half(x, &overflow);
  const uint32_t hs = num::float_to_half_simd(x);
  ASSERT_EQ(hs, h) << "bits 0x" << std::hex << b;
  ASSERT_EQ((hs & 0x7fffu) == 0x7c00u, overflow) << "bits 0x" << std::hex << b;
}

TEST(NumericsSimd, DecodersMatchOnEveryCode) {
  for (uint32_t h = 0; h < 65536; ++h) {
    ASSERT_EQ(ref::bits_of(num::half_to_float_simd(static_cast<uint16_t>(h))),
              ref::bits_of(num::half_to_float(static_cast<uint16_t>(h))))
        << "half 0x" << std::hex << h;
  }
  for (uint32_t c = 0; c < 256; ++c) {
    ASSERT_EQ(ref::bits_of(num::e4m3_to_float_simd(static_cast<uint8_t>(c))),
              ref::bits_of(num::e4m3_to_float(static_cast<uint8_t>(c))))
        << "e4m3 0x" << std::hex << c;
  }
  for (uint32_t c = 0; c < 256; ++c) {  // the high nibble is ignored by both
    ASSERT_EQ(ref::bits_of(num::e2m1_to_float_simd(static_cast<uint8_t>(c & 0xfu))),
              ref::bits_of(num::e2m1_to_float(static_cast<uint8_t>(c & 0xfu))))
        << "e2m1 0x" << std::hex << c;
  }
}

TEST(NumericsSimd, EncodersMatchOnEveryRoundingBoundary) {
  const uint32_t lows[] = {0x0000u, 0x0001u, 0x0fffu, 0x1000u, 0x1001u, 0x1fffu};
  for (uint32_t hi = 0; hi < (1u << 19); ++hi) {
    for (uint32_t lo : lows) expect_simd_encoders_match((hi << 13) | lo);
  }
}

TEST(NumericsSimd, EncodersMatchOnADenseSweepOfFloat32) {
  for (uint64_t b = 0; b <= 0xffffffffull; b += 61) {
    expect_simd_encoders_match(static_cast<uint32_t>(b));
  }
  expect_simd_encoders_match(0xffffffffu);
}

TEST(NumericsSimd, Nvfp4BlockScaleMatches) {
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> exponent(-40.0f, 20.0f);
  const float inf = std::numeric_limits<float>::infinity();
  for (int i = 0; i < 400000; ++i) {
    const float block_amax = (i % 97 == 0) ? 0.0f : std::exp2(exponent(rng));
    const float scale2 = std::exp2(exponent(rng) / 2);
    ASSERT_EQ(num::nvfp4_block_scale_simd(block_amax, scale2),
              num::nvfp4_block_scale(block_amax, scale2))
        << block_amax << " " << scale2;
  }
  for (float a : {0.0f, -0.0f, 1e-45f, 1.0f, 2688.0f, 1e30f, inf, std::nanf("")}) {
    for (float s2 : {1e-30f, 1e-3f, 1.0f, 1e30f, inf}) {
      EXPECT_EQ(num::nvfp4_block_scale_simd(a, s2), num::nvfp4_block_scale(a, s2))
          << a << " " << s2;
    }
  }
}

TEST(NumericsSimd, SelectBits) {
  EXPECT_EQ(num::select_bits(true, 0x12345678u, 0x9abcdef0u), 0x12345678u);
  EXPECT_EQ(num::select_bits(false, 0x12345678u, 0x9abcdef0u), 0x9abcdef0u);
}

}  // namespace
