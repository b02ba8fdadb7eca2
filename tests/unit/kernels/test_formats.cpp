// mq_cpu_quantize_* / mq_cpu_dequantize_* against the plain reference of docs/formats.md
// (reference_formats.h): bit-exact bytes and scales over bf16/fp16/fp32 inputs, awkward shapes,
// rounding ties, saturation, signed zeros, tiny and all-zero blocks; the round trip; and the
// argument errors.
#include <gtest/gtest.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "moequant/kernels/kernels.h"
#include "reference_formats.h"

namespace {

const mq_dtype kDtypes[] = {MQ_DTYPE_BF16, MQ_DTYPE_F16, MQ_DTYPE_F32};

const char* dtype_name(mq_dtype d) {
  return d == MQ_DTYPE_BF16 ? "bf16" : (d == MQ_DTYPE_F16 ? "f16" : "f32");
}

struct Shape {
  int64_t rows, cols;
};

std::string describe(const ref::Weight& w) {
  return std::string(dtype_name(w.dtype)) + " [" + std::to_string(w.rows) + ", " +
         std::to_string(w.cols) + "]";
}

// Rows of very different magnitudes (2^-12 .. 2^8), an all-zero row every 11, scattered -0.0.
std::vector<float> awkward_values(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-12, 8);
  std::uniform_int_distribution<int> one_in_50(0, 49);
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const bool zero_row = r % 11 == 3;
    const float scale = std::ldexp(1.0f, exponent(rng));
    for (int64_t c = 0; c < cols; ++c) {
      float x = zero_row ? 0.0f : normal(rng) * scale;
      if (one_in_50(rng) == 0) x = -0.0f;
      v[static_cast<size_t>(r * cols + c)] = x;
    }
  }
  return v;
}

template <typename T>
void expect_same(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], want[i]) << what << ": first difference at index " << i;
  }
}

// Bitwise, so that -0.0 and +0.0 differ.
void expect_same_floats(const std::vector<float>& got, const std::vector<float>& want,
                        const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(ref::bits_of(got[i]), ref::bits_of(want[i]))
        << what << ": first difference at index " << i << " (" << got[i] << " vs " << want[i]
        << ")";
  }
}

// |e4m3 rounding| of y = w / scale: at most 2^-4 relative for normals, 2^-10 absolute below.
void expect_e4m3_error_bound(float w, float deq, float scale, const std::string& what) {
  const float y = std::fabs(w / scale);
  const float bound = scale * std::max(y * 0.0625f, std::ldexp(1.0f, -10)) * 1.0001f;
  ASSERT_LE(std::fabs(deq - w), bound) << what << ": w = " << w << ", dequantized " << deq;
}

// ---- fp8 per tensor / per row ----

struct Fp8Run {
  std::vector<uint8_t> q;
  std::vector<float> deq;
};

Fp8Run run_fp8(const ref::Weight& w, const std::vector<float>& scales, bool per_row) {
  Fp8Run r;
  r.q.resize(w.values.size());
  r.deq.resize(w.values.size());
  EXPECT_EQ(
      mq_cpu_quantize_fp8(w.data(), w.dtype, w.rows, w.cols, scales.data(), per_row, r.q.data()),
      MQ_OK)
      << mq_last_error();
  EXPECT_EQ(mq_cpu_dequantize_fp8(r.q.data(), w.rows, w.cols, scales.data(), per_row, r.deq.data()),
            MQ_OK)
      << mq_last_error();
  return r;
}

const Shape kFp8Shapes[] = {{1, 1}, {1, 300}, {130, 300}, {7, 128}, {64, 1000}};

TEST(QuantizeFp8, PerTensorMatchesReferenceAndRoundTrips) {
  for (mq_dtype dtype : kDtypes) {
    for (Shape s : kFp8Shapes) {
      const ref::Weight w = ref::encode(awkward_values(s.rows, s.cols, 1), s.rows, s.cols, dtype);
      const std::string what = describe(w);
      const std::vector<float> scales = {
          ref::fp8_scale(ref::amax_of(w.values, 0, w.values.size()))};
      const Fp8Run run = run_fp8(w, scales, false);
      const std::vector<uint8_t> want = ref::quantize_fp8(w, scales, false);
      expect_same(run.q, want, what);
      expect_same_floats(run.deq, ref::dequantize_fp8(want, w.rows, w.cols, scales, false), what);
      for (size_t i = 0; i < w.values.size(); ++i) {
        expect_e4m3_error_bound(w.values[i], run.deq[i], scales[0], what);
      }
    }
  }
}

TEST(QuantizeFp8, PerRowMatchesReferenceAndRoundTrips) {
  for (mq_dtype dtype : kDtypes) {
    for (Shape s : kFp8Shapes) {
      const ref::Weight w = ref::encode(awkward_values(s.rows, s.cols, 2), s.rows, s.cols, dtype);
      const std::string what = describe(w);
      std::vector<float> scales;
      for (int64_t r = 0; r < w.rows; ++r) {
        scales.push_back(ref::fp8_scale(ref::amax_of(w.values, static_cast<size_t>(r * w.cols),
                                                     static_cast<size_t>((r + 1) * w.cols))));
      }
      const Fp8Run run = run_fp8(w, scales, true);
      const std::vector<uint8_t> want = ref::quantize_fp8(w, scales, true);
      expect_same(run.q, want, what);
      expect_same_floats(run.deq, ref::dequantize_fp8(want, w.rows, w.cols, scales, true), what);
      for (size_t i = 0; i < w.values.size(); ++i) {
        expect_e4m3_error_bound(w.values[i], run.deq[i], scales[i / w.cols], what);
      }
    }
  }
}

// Every e4m3 value and midpoint (exact in bf16 and fp16 too), with scale 1 so the quotient is
// the value itself; then saturation, signed zeros and values below the smallest subnormal.
std::vector<float> e4m3_tie_values() {
  std::vector<float> v;
  for (int c = 0; c < 0x7e; ++c) {
    const double lo = ref::e4m3_value(static_cast<uint8_t>(c));
    const double hi = ref::e4m3_value(static_cast<uint8_t>(c + 1));
    for (double x : {lo, (lo + hi) / 2}) {
      v.push_back(static_cast<float>(x));
      v.push_back(static_cast<float>(-x));
    }
  }
  for (float x : {448.0f, 464.0f, 500.0f, 30720.0f, -448.0f, -464.0f, -30720.0f, 0.0f, -0.0f,
                  std::ldexp(1.0f, -11), -std::ldexp(1.0f, -11), std::ldexp(1.0f, -10),
                  -std::ldexp(1.0f, -10)}) {
    v.push_back(x);
  }
  while (v.size() % 16 != 0) v.push_back(0.0f);
  return v;
}

TEST(QuantizeFp8, TiesSaturationAndSignedZerosAreExact) {
  const std::vector<float> values = e4m3_tie_values();
  const int64_t cols = static_cast<int64_t>(values.size());
  for (mq_dtype dtype : kDtypes) {
    const ref::Weight w = ref::encode(values, 1, cols, dtype);
    ASSERT_EQ(w.values, values) << "tie values must be exact in " << dtype_name(dtype);
    const std::vector<float> scales = {1.0f};
    const Fp8Run run = run_fp8(w, scales, false);
    expect_same(run.q, ref::quantize_fp8(w, scales, false), describe(w));
    for (size_t i = 0; i < values.size(); ++i) {
      const float x = values[i];
      // tie 1 | 1.125 -> even mantissa (1.0); tie 1.125 | 1.25 -> 1.25
      if (x == 1.0625f) {
        EXPECT_EQ(run.q[i], 0x38);
      } else if (x == 1.1875f) {
        EXPECT_EQ(run.q[i], 0x3a);
      } else if (x == 500.0f) {
        EXPECT_EQ(run.q[i], 0x7e);  // saturates to 448
      } else if (x == -30720.0f) {
        EXPECT_EQ(run.q[i], 0xfe);
      } else if (x == 0.0f && std::signbit(x)) {
        EXPECT_EQ(run.q[i], 0x80);  // -0.0 keeps its sign
      } else if (x == -std::ldexp(1.0f, -11)) {
        EXPECT_EQ(run.q[i], 0x80);  // rounds to -0
      }
    }
  }
}

// ---- nvfp4 ----

struct Nvfp4Run {
  ref::Nvfp4 q;
  std::vector<float> deq;
};

Nvfp4Run run_nvfp4(const ref::Weight& w, float scale2) {
  Nvfp4Run r;
  r.q.packed.resize(static_cast<size_t>(w.rows * w.cols / 2));
  r.q.block_scales.resize(static_cast<size_t>(w.rows * w.cols / 16));
  r.deq.resize(w.values.size());
  EXPECT_EQ(mq_cpu_quantize_nvfp4(w.data(), w.dtype, w.rows, w.cols, scale2, r.q.packed.data(),
                                  r.q.block_scales.data()),
            MQ_OK)
      << mq_last_error();
  EXPECT_EQ(mq_cpu_dequantize_nvfp4(r.q.packed.data(), r.q.block_scales.data(), scale2, w.rows,
                                    w.cols, r.deq.data()),
            MQ_OK)
      << mq_last_error();
  return r;
}

void expect_nvfp4_matches_reference(const ref::Weight& w, float scale2) {
  const std::string what = describe(w);
  const Nvfp4Run run = run_nvfp4(w, scale2);
  const ref::Nvfp4 want = ref::quantize_nvfp4(w, scale2);
  expect_same(run.q.block_scales, want.block_scales, what + " block scales");
  expect_same(run.q.packed, want.packed, what + " packed");
  expect_same_floats(run.deq, ref::dequantize_nvfp4(want, scale2, w.rows, w.cols), what);
}

TEST(QuantizeNvfp4, MatchesReferenceAndRoundTrips) {
  const Shape shapes[] = {{1, 16}, {3, 48}, {130, 304}, {9, 1024}};
  for (mq_dtype dtype : kDtypes) {
    for (Shape s : shapes) {
      const ref::Weight w = ref::encode(awkward_values(s.rows, s.cols, 3), s.rows, s.cols, dtype);
      const float amax = ref::amax_of(w.values, 0, w.values.size());
      const float scale2 = amax == 0.0f ? 1.0f : amax / (6.0f * 448.0f);
      expect_nvfp4_matches_reference(w, scale2);
      // Within half the widest e2m1 gap (4 -> 6) of the block's divisor; or, where a small
      // block scale rounded down in e4m3 (coarse among its subnormals), the saturation at 6.
      const Nvfp4Run run = run_nvfp4(w, scale2);
      for (size_t i = 0; i < w.values.size(); ++i) {
        const float divisor =
            static_cast<float>(ref::e4m3_value(run.q.block_scales[i / 16])) * scale2;
        const float bound = std::max(divisor, std::fabs(w.values[i]) - 6.0f * divisor);
        ASSERT_LE(std::fabs(run.deq[i] - w.values[i]), bound * 1.0001f) << describe(w) << " " << i;
      }
    }
  }
}

TEST(QuantizeNvfp4, TiesSaturationTinyAndZeroBlocks) {
  // With scale2 = 1 and a block amax of 6 the block scale is e4m3(1.0) and y = w exactly.
  const std::vector<float> values = {
      // ties: 0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4 (and negatives)
      6.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, -0.25f, -0.75f, -1.25f, -1.75f, -2.5f,
      -3.5f, -5.0f, -0.0f,
      // all zero (scale 0 -> 1.0)
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      // all -0.0: -0.0 is not < 0, so nibbles are 0
      -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f,
      -0.0f, -0.0f, -0.0f,
      // tiny: the block scale clamps to 2^-9; negatives rounding to zero encode 0x8
      1e-6f, -1e-6f, 2e-6f, -2e-6f, 1e-6f, -1e-6f, 2e-6f, -2e-6f, 1e-6f, -1e-6f, 2e-6f, -2e-6f,
      1e-6f, -1e-6f, 2e-6f, -2e-6f,
      // amax 6.3: scale 1.05 rounds down to 1.0, so 6.3 saturates to 6
      6.3f, -6.3f, 1.0f, 2.0f, 3.0f, 4.0f, 0.5f, 1.5f, 6.2f, -6.2f, 0, 0, 0, 0, 0, 0,
      // huge: the block scale clamps to 448, values saturate
      6000.0f, -6000.0f, 5000.0f, 100.0f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t cols = 32;
  const int64_t rows = static_cast<int64_t>(values.size()) / cols;
  for (mq_dtype dtype : kDtypes) {
    const ref::Weight w = ref::encode(values, rows, cols, dtype);
    expect_nvfp4_matches_reference(w, 1.0f);
    const Nvfp4Run run = run_nvfp4(w, 1.0f);
    EXPECT_EQ(run.q.block_scales[0], 0x38);  // e4m3(1.0)
    const uint8_t want_ties[8] = {0x07, 0x22, 0x44, 0x66, 0xa8, 0xca, 0xec, 0x0e};
    for (int j = 0; j < 8; ++j) EXPECT_EQ(run.q.packed[j], want_ties[j]) << "byte " << j;
    EXPECT_EQ(run.q.block_scales[1], 0x38);  // all-zero block
    EXPECT_EQ(run.q.block_scales[2], 0x38);  // all -0.0 block
    for (int j = 8; j < 24; ++j) EXPECT_EQ(run.q.packed[j], 0x00) << "byte " << j;
    EXPECT_EQ(run.q.block_scales[3], 0x01);  // 2^-9
    for (int j = 24; j < 32; ++j) EXPECT_EQ(run.q.packed[j], 0x80) << "byte " << j;
    EXPECT_EQ(run.q.block_scales[4], 0x38);
    EXPECT_EQ(run.q.packed[32], 0xf7);       // 6.3 -> 6, -6.3 -> -6
    EXPECT_EQ(run.q.block_scales[5], 0x7e);  // 448
    EXPECT_EQ(run.q.packed[40], 0xf7);
  }
}

// ---- fp8 128x128 blocks ----

struct Fp8BlockRun {
  ref::Fp8Block q;
  std::vector<float> deq;
};

Fp8BlockRun run_fp8_block(const ref::Weight& w) {
  Fp8BlockRun r;
  r.q.q.resize(w.values.size());
  r.q.scales.resize(static_cast<size_t>(((w.rows + 127) / 128) * ((w.cols + 127) / 128)));
  r.deq.resize(w.values.size());
  EXPECT_EQ(
      mq_cpu_quantize_fp8_block(w.data(), w.dtype, w.rows, w.cols, r.q.q.data(), r.q.scales.data()),
      MQ_OK)
      << mq_last_error();
  EXPECT_EQ(
      mq_cpu_dequantize_fp8_block(r.q.q.data(), r.q.scales.data(), w.rows, w.cols, r.deq.data()),
      MQ_OK)
      << mq_last_error();
  return r;
}

void expect_fp8_block_matches_reference(const ref::Weight& w) {
  const std::string what = describe(w);
  const Fp8BlockRun run = run_fp8_block(w);
  const ref::Fp8Block want = ref::quantize_fp8_block(w);
  expect_same_floats(run.q.scales, want.scales, what + " tile scales");
  expect_same(run.q.q, want.q, what);
  expect_same_floats(run.deq, ref::dequantize_fp8_block(want, w.rows, w.cols), what);
  const int64_t tile_cols = (w.cols + 127) / 128;
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) {
      const size_t i = static_cast<size_t>(r * w.cols + c);
      expect_e4m3_error_bound(w.values[i], run.deq[i],
                              want.scales[static_cast<size_t>((r / 128) * tile_cols + c / 128)],
                              what);
    }
  }
}

TEST(QuantizeFp8Block, MatchesReferenceOnEdgeTiles) {
  const Shape shapes[] = {{1, 1}, {1, 300}, {130, 300}, {256, 128}, {129, 129}, {3, 520}};
  for (mq_dtype dtype : kDtypes) {
    for (Shape s : shapes) {
      expect_fp8_block_matches_reference(
          ref::encode(awkward_values(s.rows, s.cols, 4), s.rows, s.cols, dtype));
    }
  }
}

TEST(QuantizeFp8Block, TieTileAndZeroTile) {
  // 130 x 300: tile (0, 0) holds 448 and every e4m3 midpoint (scale exactly 1); the bottom
  // tiles (rows 128..129) are all zero or -0.0 (scale 1.0, bytes 0x00 / 0x80).
  const int64_t rows = 130, cols = 300;
  std::vector<float> v = awkward_values(rows, cols, 5);
  const std::vector<float> ties = e4m3_tie_values();
  size_t t = 0;
  for (int64_t r = 0; r < 128; ++r) {
    for (int64_t c = 0; c < 128; ++c) {
      float x = t < ties.size() ? ties[t++] : 0.0f;
      if (std::fabs(x) > 448.0f) x = 448.0f;  // keep the tile amax at 448
      v[static_cast<size_t>(r * cols + c)] = x;
    }
  }
  for (int64_t i = 128 * cols; i < rows * cols; ++i)
    v[static_cast<size_t>(i)] = (i % 3) ? 0.0f : -0.0f;
  for (mq_dtype dtype : kDtypes) {
    const ref::Weight w = ref::encode(v, rows, cols, dtype);
    expect_fp8_block_matches_reference(w);
    const Fp8BlockRun run = run_fp8_block(w);
    EXPECT_EQ(run.q.scales[0], 1.0f);
    for (int j = 3; j < 6; ++j) EXPECT_EQ(run.q.scales[static_cast<size_t>(j)], 1.0f) << j;
    for (int64_t i = 128 * cols; i < rows * cols; ++i) {
      ASSERT_EQ(run.q.q[static_cast<size_t>(i)], (i % 3) ? 0x00 : 0x80) << i;
    }
  }
}

// ---- int4 (GPTQ v1) ----

struct Int4Run {
  ref::Int4 q;
  std::vector<float> deq;
  mq_status status = MQ_OK;
};

Int4Run run_int4(const ref::Weight& w) {
  const int64_t groups = (w.cols + 127) / 128;
  Int4Run r;
  r.q.qweight.assign(static_cast<size_t>(w.cols / 8 * w.rows), -1);
  r.q.scales.assign(static_cast<size_t>(groups * w.rows), 0xffff);
  r.q.qzeros.assign(static_cast<size_t>(groups * w.rows / 8), -1);
  r.q.g_idx.assign(static_cast<size_t>(w.cols), -1);
  r.deq.resize(w.values.size());
  r.status = mq_cpu_quantize_int4(w.data(), w.dtype, w.rows, w.cols, r.q.qweight.data(),
                                  r.q.scales.data(), r.q.qzeros.data(), r.q.g_idx.data());
  if (r.status != MQ_OK) return r;
  EXPECT_EQ(
      mq_cpu_dequantize_int4(r.q.qweight.data(), r.q.scales.data(), w.rows, w.cols, r.deq.data()),
      MQ_OK)
      << mq_last_error();
  return r;
}

void expect_int4_matches_reference(const ref::Weight& w) {
  const std::string what = describe(w);
  const Int4Run run = run_int4(w);
  ASSERT_EQ(run.status, MQ_OK) << what << ": " << mq_last_error();
  const ref::Int4 want = ref::quantize_int4(w);
  ASSERT_FALSE(want.overflow);
  expect_same(run.q.scales, want.scales, what + " scales");
  expect_same(run.q.qweight, want.qweight, what + " qweight");
  expect_same(run.q.qzeros, want.qzeros, what + " qzeros");
  expect_same(run.q.g_idx, want.g_idx, what + " g_idx");
  expect_same_floats(run.deq, ref::dequantize_int4(want, w.rows, w.cols), what);
}

TEST(QuantizeInt4, MatchesReferenceAndRoundTrips) {
  const Shape shapes[] = {{8, 8}, {8, 136}, {16, 264}, {24, 128}, {136, 296}};
  for (mq_dtype dtype : kDtypes) {
    for (Shape s : shapes) {
      const ref::Weight w = ref::encode(awkward_values(s.rows, s.cols, 6), s.rows, s.cols, dtype);
      expect_int4_matches_reference(w);
      // Within half a step of the stored scale (plus the clamp of an fp16 rounding below
      // amax / 7, a few parts in a thousand at most).
      const Int4Run run = run_int4(w);
      for (int64_t o = 0; o < w.rows; ++o) {
        for (int64_t i = 0; i < w.cols; ++i) {
          const size_t k = static_cast<size_t>(o * w.cols + i);
          const float scale =
              ref::f16_value(run.q.scales[static_cast<size_t>((i / 128) * w.rows + o)]);
          ASSERT_LE(std::fabs(run.deq[k] - w.values[k]), 0.51f * scale) << describe(w) << " " << k;
        }
      }
    }
  }
}

TEST(QuantizeInt4, TiesZeroAndUnderflowingGroups) {
  // 8 x 256 (two groups). Row 0 group 0 has amax 7 (scale exactly 1.0) and ties; row 1 is all
  // zero (scale 1.0); row 2 group 1 is so small that amax / 7 underflows fp16 to 0.
  const int64_t rows = 8, cols = 256;
  std::vector<float> v = awkward_values(rows, cols, 7);
  const float row0[] = {7.0f,  0.5f,  1.5f, 2.5f,  -0.5f, -1.5f,
                        -2.5f, -0.0f, 3.5f, -7.0f, 6.5f,  0.0f};
  for (size_t c = 0; c < 128; ++c) v[c] = c < 12 ? row0[c] : 0.0f;
  for (int64_t c = 0; c < cols; ++c) v[static_cast<size_t>(cols + c)] = 0.0f;
  for (int64_t c = 128; c < cols; ++c)
    v[static_cast<size_t>(2 * cols + c)] = (c % 2) ? 1e-9f : 0.0f;
  for (mq_dtype dtype : {MQ_DTYPE_BF16, MQ_DTYPE_F32}) {  // 1e-9 is zero in f16
    const ref::Weight w = ref::encode(v, rows, cols, dtype);
    expect_int4_matches_reference(w);
    const Int4Run run = run_int4(w);
    EXPECT_EQ(run.q.scales[0], 0x3c00);                              // fp16 1.0, row 0 group 0
    EXPECT_EQ(run.q.scales[1], 0x3c00);                              // row 1 group 0, all zero
    EXPECT_EQ(run.q.scales[static_cast<size_t>(rows + 2)], 0x0000);  // row 2 group 1 underflows
    // row 0, cols 0..7: 7, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, -0.0 -> 7, 0, 2, 2, -0, -2, -2, 0
    EXPECT_EQ(static_cast<uint32_t>(run.q.qweight[0]), 0x8668aa8fu);
    // row 0, cols 8..11: 3.5 -> 4, -7, 6.5 -> 6, 0
    EXPECT_EQ(static_cast<uint32_t>(run.q.qweight[static_cast<size_t>(rows)]) & 0xffffu, 0x8e1cu);
    // underflowed scale: w / 0 is +inf (-> 7, nibble 15), 0 / 0 is NaN (-> zero point, 8)
    EXPECT_EQ(static_cast<uint32_t>(run.q.qweight[static_cast<size_t>(16 * rows + 2)]),
              0xf8f8f8f8u);
    for (int32_t z : run.q.qzeros) EXPECT_EQ(static_cast<uint32_t>(z), 0x77777777u);
    for (int64_t i = 0; i < cols; ++i) EXPECT_EQ(run.q.g_idx[static_cast<size_t>(i)], i / 128);
  }
}

TEST(QuantizeInt4, ScaleOverflowIsARangeError) {
  const int64_t rows = 8, cols = 256;
  std::vector<float> v(static_cast<size_t>(rows * cols), 1.0f);
  v[static_cast<size_t>(2 * cols + 200)] = 1e6f;  // row 2, group 1: 1e6 / 7 > 65504
  v[static_cast<size_t>(5 * cols + 3)] = 2e6f;    // a later one: the first is reported
  for (mq_dtype dtype : {MQ_DTYPE_BF16, MQ_DTYPE_F32}) {
    const Int4Run run = run_int4(ref::encode(v, rows, cols, dtype));
    EXPECT_EQ(run.status, MQ_ERR_RANGE);
    const std::string msg = mq_last_error();
    EXPECT_NE(msg.find("row 2, group 1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("65504"), std::string::npos) << msg;
  }
  // Just below the limit is fine: amax 458500 / 7 = 65500 rounds to 65504.
  v.assign(v.size(), 1.0f);
  v[0] = 458500.0f;
  EXPECT_EQ(run_int4(ref::encode(v, rows, cols, MQ_DTYPE_F32)).status, MQ_OK) << mq_last_error();
}

// ---- dequantizers on arbitrary bytes (every code, both nibbles) ----

TEST(Dequantize, ArbitraryBytesMatchReference) {
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> byte(0, 255);
  const int64_t rows = 16, cols = 256;
  const size_t n = static_cast<size_t>(rows * cols);
  std::vector<uint8_t> q(n);
  for (size_t i = 0; i < n; ++i) {
    q[i] = static_cast<uint8_t>(i < 256 ? i : byte(rng));
    if ((q[i] & 0x7f) == 0x7f) q[i] = 0x00;  // skip the NaN codes: NaN != NaN bitwise is noise
  }
  std::vector<float> out(n);
  const std::vector<float> scales = {0.37f};
  ASSERT_EQ(mq_cpu_dequantize_fp8(q.data(), rows, cols, scales.data(), 0, out.data()), MQ_OK);
  expect_same_floats(out, ref::dequantize_fp8(q, rows, cols, scales, false), "fp8");

  ref::Nvfp4 nv;
  nv.packed.assign(q.begin(), q.begin() + static_cast<long>(n / 2));
  nv.block_scales.assign(q.begin(), q.begin() + static_cast<long>(n / 16));
  ASSERT_EQ(mq_cpu_dequantize_nvfp4(nv.packed.data(), nv.block_scales.data(), 0.01f, rows, cols,
                                    out.data()),
            MQ_OK);
  expect_same_floats(out, ref::dequantize_nvfp4(nv, 0.01f, rows, cols), "nvfp4");

  ref::Int4 i4;
  std::uniform_int_distribution<uint32_t> word;
  for (size_t i = 0; i < n / 8; ++i) i4.qweight.push_back(static_cast<int32_t>(word(rng)));
  for (int64_t i = 0; i < 2 * rows; ++i)
    i4.scales.push_back(ref::f16_bits(0.001f * static_cast<float>(i + 1)));
  ASSERT_EQ(mq_cpu_dequantize_int4(i4.qweight.data(), i4.scales.data(), rows, cols, out.data()),
            MQ_OK);
  expect_same_floats(out, ref::dequantize_int4(i4, rows, cols), "int4");
}

// ---- argument errors ----

bool message_has(const std::string& needle) {
  return std::string(mq_last_error()).find(needle) != std::string::npos;
}

TEST(KernelErrors, Nvfp4ColsMustBeAMultipleOf16) {
  std::vector<float> w(4 * 24, 1.0f);
  std::vector<uint8_t> packed(48), scales(6);
  EXPECT_EQ(
      mq_cpu_quantize_nvfp4(w.data(), MQ_DTYPE_F32, 4, 24, 1.0f, packed.data(), scales.data()),
      MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("[4, 24]")) << mq_last_error();
  EXPECT_TRUE(message_has("multiple of 16")) << mq_last_error();
  std::vector<float> out(4 * 24);
  EXPECT_EQ(mq_cpu_dequantize_nvfp4(packed.data(), scales.data(), 1.0f, 4, 24, out.data()),
            MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("[4, 24]")) << mq_last_error();
  EXPECT_EQ(
      mq_cpu_quantize_nvfp4(w.data(), MQ_DTYPE_F32, 4, 16, 0.0f, packed.data(), scales.data()),
      MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("scale2")) << mq_last_error();
}

TEST(KernelErrors, Int4ShapeMustDivideBy8) {
  std::vector<float> w(12 * 16, 1.0f);
  std::vector<int32_t> qweight(64), qzeros(8), g_idx(16);
  std::vector<uint16_t> scales(16);
  EXPECT_EQ(mq_cpu_quantize_int4(w.data(), MQ_DTYPE_F32, 12, 16, qweight.data(), scales.data(),
                                 qzeros.data(), g_idx.data()),
            MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("rows must be a multiple of 8")) << mq_last_error();
  EXPECT_TRUE(message_has("[12, 16]")) << mq_last_error();
  EXPECT_EQ(mq_cpu_quantize_int4(w.data(), MQ_DTYPE_F32, 8, 12, qweight.data(), scales.data(),
                                 qzeros.data(), g_idx.data()),
            MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("cols must be a multiple of 8")) << mq_last_error();
  std::vector<float> out(12 * 16);
  EXPECT_EQ(mq_cpu_dequantize_int4(qweight.data(), scales.data(), 8, 12, out.data()),
            MQ_ERR_INVALID);
}

TEST(KernelErrors, NullPointersShapesDtypesAndFlags) {
  std::vector<float> w(64, 1.0f), scales(8, 1.0f), out(64);
  std::vector<uint8_t> q(64);
  EXPECT_EQ(mq_cpu_quantize_fp8(nullptr, MQ_DTYPE_F32, 8, 8, scales.data(), 0, q.data()),
            MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("`w` is null")) << mq_last_error();
  EXPECT_EQ(mq_cpu_quantize_fp8(w.data(), MQ_DTYPE_F32, 8, 8, nullptr, 0, q.data()),
            MQ_ERR_INVALID);
  EXPECT_EQ(mq_cpu_quantize_fp8(w.data(), MQ_DTYPE_F32, 0, 8, scales.data(), 0, q.data()),
            MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("[0, 8]")) << mq_last_error();
  EXPECT_EQ(mq_cpu_quantize_fp8(w.data(), MQ_DTYPE_F32, 8, -1, scales.data(), 0, q.data()),
            MQ_ERR_INVALID);
  EXPECT_EQ(
      mq_cpu_quantize_fp8(w.data(), static_cast<mq_dtype>(7), 8, 8, scales.data(), 0, q.data()),
      MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("dtype")) << mq_last_error();
  EXPECT_EQ(mq_cpu_quantize_fp8(w.data(), MQ_DTYPE_F32, 8, 8, scales.data(), 2, q.data()),
            MQ_ERR_INVALID);
  EXPECT_EQ(mq_cpu_quantize_fp8_block(w.data(), MQ_DTYPE_F32, 8, 8, q.data(), nullptr),
            MQ_ERR_INVALID);
  EXPECT_EQ(mq_cpu_dequantize_fp8(q.data(), 8, 8, scales.data(), 0, nullptr), MQ_ERR_INVALID);
  EXPECT_EQ(mq_cpu_dequantize_fp8_block(q.data(), scales.data(), 8, 0, out.data()), MQ_ERR_INVALID);
  // A successful call after a failure does not need to clear the message, but must succeed.
  EXPECT_EQ(mq_cpu_quantize_fp8(w.data(), MQ_DTYPE_F32, 8, 8, scales.data(), 0, q.data()), MQ_OK);
}

#ifndef MOEQUANT_HAS_CUDA
TEST(CudaStub, EveryEntryPointReportsNoCuda) {
  EXPECT_EQ(mq_cuda_available(), 0);
  std::vector<float> buf(64);
  std::vector<uint8_t> bytes(64);
  std::vector<int32_t> ints(64);
  std::vector<uint16_t> halves(64);
  mq_amax_item item{buf.data(), 8, 8, MQ_DTYPE_F32, 0, 0};
  EXPECT_EQ(mq_cuda_multi_amax(&item, 1, buf.data(), ints.data(), nullptr), MQ_ERR_NO_CUDA);
  EXPECT_TRUE(message_has("mq_cuda_multi_amax")) << mq_last_error();
  EXPECT_EQ(
      mq_cuda_quantize_fp8(buf.data(), MQ_DTYPE_F32, 8, 8, buf.data(), 0, bytes.data(), nullptr),
      MQ_ERR_NO_CUDA);
  EXPECT_EQ(mq_cuda_quantize_nvfp4(buf.data(), MQ_DTYPE_F32, 8, 16, 1.0f, bytes.data(),
                                   bytes.data(), nullptr),
            MQ_ERR_NO_CUDA);
  EXPECT_EQ(
      mq_cuda_quantize_fp8_block(buf.data(), MQ_DTYPE_F32, 8, 8, bytes.data(), buf.data(), nullptr),
      MQ_ERR_NO_CUDA);
  EXPECT_EQ(mq_cuda_quantize_int4(buf.data(), MQ_DTYPE_F32, 8, 8, ints.data(), halves.data(),
                                  ints.data(), ints.data(), nullptr),
            MQ_ERR_NO_CUDA);
  mq_quant_item q{buf.data(), 8, 8, 1.0f, bytes.data(), nullptr, nullptr, nullptr};
  EXPECT_EQ(mq_cuda_quantize_batched(MQ_FORMAT_FP8, MQ_DTYPE_F32, &q, 1, nullptr), MQ_ERR_NO_CUDA);
  EXPECT_TRUE(message_has("mq_cuda_quantize_batched")) << mq_last_error();
  EXPECT_EQ(mq_cuda_dequantize_fp8(bytes.data(), 8, 8, buf.data(), 0, buf.data(), nullptr),
            MQ_ERR_NO_CUDA);
  EXPECT_EQ(mq_cuda_dequantize_nvfp4(bytes.data(), bytes.data(), 1.0f, 8, 16, buf.data(), nullptr),
            MQ_ERR_NO_CUDA);
  EXPECT_EQ(mq_cuda_dequantize_fp8_block(bytes.data(), buf.data(), 8, 8, buf.data(), nullptr),
            MQ_ERR_NO_CUDA);
  EXPECT_EQ(mq_cuda_dequantize_int4(ints.data(), halves.data(), 8, 8, buf.data(), nullptr),
            MQ_ERR_NO_CUDA);
  EXPECT_TRUE(message_has("mq_cuda_dequantize_int4")) << mq_last_error();
}
#endif

}  // namespace
