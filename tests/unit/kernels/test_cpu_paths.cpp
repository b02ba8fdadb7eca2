// The vectorized, multithreaded CPU kernels against a plain scalar transcription of docs/formats.md
// through the scalar numerics.h functions (the loops the kernels replaced: one element at a
// time, no stripes, chunks or bands), byte for byte:
//   - on every kind of input bits: NaN, +-Inf, subnormals, signed zeros, huge and tiny values,
//     for all three input dtypes (where docs/formats.md gives no rule, e.g. NaN, the kernels must
//     still agree with the scalar definitions, which the CUDA kernels share);
//   - on shapes that cross every internal boundary: the flat chunks, the stack-array stripes,
//     the fp8_block column units, the int4 row bands and the ragged last int4 group;
//   - with 1 and with 3 threads (so the per-thread ranges split differently).
#include <gtest/gtest.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"

namespace {

namespace num = moequant::num;

const mq_dtype kDtypes[] = {MQ_DTYPE_BF16, MQ_DTYPE_F16, MQ_DTYPE_F32};
const int kThreadCounts[] = {1, 3};

// ---- inputs ----------------------------------------------------------------------------------

struct Input {
  int64_t rows = 0, cols = 0;
  mq_dtype dtype = MQ_DTYPE_F32;
  std::vector<uint8_t> bytes;
  const void* data() const { return bytes.data(); }
  float at(int64_t i) const {
    if (dtype == MQ_DTYPE_F32) {
      float f;
      memcpy(&f, bytes.data() + 4 * i, 4);
      return f;
    }
    uint16_t h;
    memcpy(&h, bytes.data() + 2 * i, 2);
    return dtype == MQ_DTYPE_BF16 ? num::bf16_to_float(h) : num::half_to_float(h);
  }
};

std::string describe(const Input& in, int threads) {
  const char* d = in.dtype == MQ_DTYPE_BF16 ? "bf16" : (in.dtype == MQ_DTYPE_F16 ? "f16" : "f32");
  return std::string(d) + " [" + std::to_string(in.rows) + ", " + std::to_string(in.cols) + "], " +
         std::to_string(threads) + " thread(s)";
}

enum class Specials {
  kNone,       // finite values only
  kNoInf,      // plus NaN, subnormals and signed zeros (int4: an Inf is a range error)
  kRandomBits  // every bit pattern equally likely, plus the above
};

// Mostly normal values of row-varying magnitude; every 7th element a special one.
Input make_input(int64_t rows, int64_t cols, mq_dtype dtype, Specials specials, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-14, 6);
  std::uniform_int_distribution<uint32_t> bits;
  Input in;
  in.rows = rows;
  in.cols = cols;
  in.dtype = dtype;
  const int64_t n = rows * cols;
  const size_t size = dtype == MQ_DTYPE_F32 ? 4 : 2;
  in.bytes.resize(static_cast<size_t>(n) * size);
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = std::ldexp(1.0f, exponent(rng));
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      uint32_t b = num::float_bits(normal(rng) * scale);
      const uint32_t pick = bits(rng);
      if (specials != Specials::kNone && pick % 7 == 0) {
        switch ((pick / 7) % 6) {
          case 0:
            b = 0x7fc00000u | (pick & 0x80000000u);
            break;  // NaN
          case 1:
            b = 0x7f800001u | (bits(rng) & 0x803fffffu);
            break;  // NaN with payload
          case 2:
            b = (pick & 0x80000000u) | 0u;
            break;  // +-0
          case 3:
            b = (pick & 0x80000000u) | (bits(rng) & 0x007fffffu);
            break;  // f32 subnormal
          case 4:
            b = (pick & 0x80000000u) | 0x38000000u | (bits(rng) & 0x7fffffu);
            break;
          default:
            b = specials == Specials::kRandomBits ? bits(rng)
                                                  : (bits(rng) & 0x807fffffu) | 0x30000000u;
        }
        if (specials == Specials::kRandomBits && (pick / 42) % 4 == 0) {
          b = (pick & 0x80000000u) | 0x7f800000u;  // +-Inf
        }
      }
      if (dtype == MQ_DTYPE_F32) {
        memcpy(in.bytes.data() + 4 * i, &b, 4);
      } else {
        uint16_t h = 0;
        if (dtype == MQ_DTYPE_BF16) {
          h = static_cast<uint16_t>(b >> 16);
          if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu) != 0) h |= 0x40;  // stay NaN
        } else {
          bool overflow = false;
          h = num::float_to_half(num::bits_float(b), &overflow);
          if (num::bits_float(b) != num::bits_float(b)) {  // NaN, with any nonzero payload
            h = static_cast<uint16_t>((h & 0x8000u) | 0x7c00u | (1u + (bits(rng) % 0x3ffu)));
          }
          if (specials == Specials::kNone && overflow) h = 0x7bff;
          if (specials == Specials::kNoInf && (h & 0x7fffu) == 0x7c00u) h = 0x7bff;
        }
        memcpy(in.bytes.data() + 2 * i, &h, 2);
      }
    }
  }
  return in;
}

// ---- the scalar oracle ---------------------------------------------------------------------

float range_amax(const Input& in, int64_t begin, int64_t end) {
  float m = 0.0f;
  for (int64_t i = begin; i < end; ++i) {
    const float a = num::abs_f(in.at(i));
    m = a > m ? a : m;
  }
  return m;
}

std::vector<uint8_t> oracle_fp8(const Input& in, const std::vector<float>& scales, bool per_row) {
  std::vector<uint8_t> out(static_cast<size_t>(in.rows * in.cols));
  for (int64_t i = 0; i < in.rows * in.cols; ++i) {
    out[static_cast<size_t>(i)] =
        num::float_to_e4m3(in.at(i) / scales[per_row ? static_cast<size_t>(i / in.cols) : 0]);
  }
  return out;
}

void oracle_nvfp4(const Input& in, float scale2, std::vector<uint8_t>* packed,
                  std::vector<uint8_t>* block_scales) {
  const int64_t blocks = in.rows * in.cols / 16;
  packed->assign(static_cast<size_t>(blocks * 8), 0);
  block_scales->assign(static_cast<size_t>(blocks), 0);
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t code = num::nvfp4_block_scale(range_amax(in, 16 * b, 16 * b + 16), scale2);
    (*block_scales)[static_cast<size_t>(b)] = code;
    const float divisor = num::e4m3_to_float(code) * scale2;
    for (int64_t j = 0; j < 8; ++j) {
      const uint8_t lo = num::float_to_e2m1(in.at(16 * b + 2 * j) / divisor);
      const uint8_t hi = num::float_to_e2m1(in.at(16 * b + 2 * j + 1) / divisor);
      (*packed)[static_cast<size_t>(8 * b + j)] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void oracle_fp8_block(const Input& in, std::vector<uint8_t>* q, std::vector<float>* scales) {
  const int64_t tr = (in.rows + 127) / 128, tc = (in.cols + 127) / 128;
  q->assign(static_cast<size_t>(in.rows * in.cols), 0);
  scales->assign(static_cast<size_t>(tr * tc), 0.0f);
  for (int64_t t = 0; t < tr * tc; ++t) {
    const int64_t r0 = (t / tc) * 128, r1 = std::min(r0 + 128, in.rows);
    const int64_t c0 = (t % tc) * 128, c1 = std::min(c0 + 128, in.cols);
    float m = 0.0f;
    for (int64_t r = r0; r < r1; ++r)
      m = std::max(m, range_amax(in, r * in.cols + c0, r * in.cols + c1));
    const float scale = num::fp8_scale_from_amax(m);
    (*scales)[static_cast<size_t>(t)] = scale;
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t i = r * in.cols + c0; i < r * in.cols + c1; ++i) {
        (*q)[static_cast<size_t>(i)] = num::float_to_e4m3(in.at(i) / scale);
      }
    }
  }
}

struct Int4Out {
  std::vector<int32_t> qweight, qzeros, g_idx;
  std::vector<uint16_t> scales;
};

// Returns the first overflowing unit o * groups + g, or -1.
int64_t oracle_int4(const Input& in, Int4Out* out) {
  const int64_t rows = in.rows, cols = in.cols, groups = (cols + 127) / 128;
  out->qweight.assign(static_cast<size_t>(cols / 8 * rows), 0);
  out->scales.assign(static_cast<size_t>(groups * rows), 0);
  out->qzeros.assign(static_cast<size_t>(groups * rows / 8), static_cast<int32_t>(0x77777777u));
  out->g_idx.resize(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i)
    out->g_idx[static_cast<size_t>(i)] = static_cast<int32_t>(i / 128);
  int64_t first_overflow = -1;
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * 128, c1 = std::min(c0 + 128, cols);
      const float amax = range_amax(in, o * cols + c0, o * cols + c1);
      bool overflow = false;
      const uint16_t sb = num::float_to_half(amax == 0.0f ? 1.0f : amax / 7.0f, &overflow);
      if (overflow && first_overflow < 0) first_overflow = o * groups + g;
      out->scales[static_cast<size_t>(g * rows + o)] = sb;
      const float stored = num::half_to_float(sb);
      for (int64_t c = c0; c < c1; c += 8) {
        uint32_t word = 0;
        for (int64_t k = 0; k < 8; ++k)
          word |= num::int4_code(in.at(o * cols + c + k), stored) << (4 * k);
        out->qweight[static_cast<size_t>((c / 8) * rows + o)] = static_cast<int32_t>(word);
      }
    }
  }
  return first_overflow;
}

template <typename T>
void expect_same(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], want[i]) << what << ": first difference at index " << i;
  }
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want,
                      const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(num::float_bits(got[i]), num::float_bits(want[i]))
        << what << ": first difference at index " << i;
  }
}

// Runs `body` once per thread count, restoring OpenMP's setting afterwards.
template <typename Body>
void for_thread_counts(Body&& body) {
  const int saved = omp_get_max_threads();
  for (int t : kThreadCounts) {
    omp_set_num_threads(t);
    body(t);
  }
  omp_set_num_threads(saved);
}

// ---- quantizers ------------------------------------------------------------------------------

struct Shape {
  int64_t rows, cols;
};

// fp8 chunks are 32768 flat elements: rows end inside chunks and chunks inside rows.
const Shape kFp8Shapes[] = {{1, 1}, {3, 40001}, {70, 1000}, {1, 100003}, {257, 129}};

TEST(CpuPaths, Fp8PerTensorAndPerRow) {
  for (mq_dtype dtype : kDtypes) {
    for (Shape s : kFp8Shapes) {
      const Input in = make_input(s.rows, s.cols, dtype, Specials::kRandomBits, 11);
      std::vector<float> row_scales;
      std::mt19937 rng(5);
      std::uniform_real_distribution<float> e(-20.0f, 10.0f);
      for (int64_t r = 0; r < s.rows; ++r) row_scales.push_back(std::exp2(e(rng)));
      const std::vector<float> one = {row_scales[0]};
      const std::vector<uint8_t> want_tensor = oracle_fp8(in, one, false);
      const std::vector<uint8_t> want_rows = oracle_fp8(in, row_scales, true);
      for_thread_counts([&](int threads) {
        const std::string what = describe(in, threads);
        std::vector<uint8_t> got(want_tensor.size(), 0xa5);
        ASSERT_EQ(mq_cpu_quantize_fp8(in.data(), dtype, s.rows, s.cols, one.data(), 0, got.data()),
                  MQ_OK);
        expect_same(got, want_tensor, what + " per tensor");
        got.assign(got.size(), 0xa5);
        ASSERT_EQ(
            mq_cpu_quantize_fp8(in.data(), dtype, s.rows, s.cols, row_scales.data(), 1, got.data()),
            MQ_OK);
        expect_same(got, want_rows, what + " per row");
      });
    }
  }
}

TEST(CpuPaths, Fp8ZeroAndSpecialScales) {
  // A zero, negative, subnormal, huge or infinite scale is no valid weight_scale, but the
  // kernels still compute exactly what the scalar rule computes (0/0, x/inf, ...).
  const Input in = make_input(5, 3000, MQ_DTYPE_BF16, Specials::kRandomBits, 12);
  const float inf = std::numeric_limits<float>::infinity();
  for (float scale : {0.0f, -0.0f, -1.5f, 1e-40f, 3e38f, inf}) {
    const std::vector<float> one = {scale};
    std::vector<uint8_t> got(static_cast<size_t>(in.rows * in.cols));
    ASSERT_EQ(mq_cpu_quantize_fp8(in.data(), in.dtype, in.rows, in.cols, one.data(), 0, got.data()),
              MQ_OK);
    expect_same(got, oracle_fp8(in, one, false), "scale " + std::to_string(scale));
  }
}

// nvfp4 chunks are 2048 blocks, stripes 32 blocks.
const Shape kNvfp4Shapes[] = {{1, 16}, {33, 48}, {7, 16 * 700}, {1, 16 * 4099}};

TEST(CpuPaths, Nvfp4) {
  for (mq_dtype dtype : kDtypes) {
    for (Shape s : kNvfp4Shapes) {
      const Input in = make_input(s.rows, s.cols, dtype, Specials::kRandomBits, 13);
      for (float scale2 : {1.0f, 3.7e-4f, 1e-30f, 1e30f}) {
        std::vector<uint8_t> want_packed, want_scales;
        oracle_nvfp4(in, scale2, &want_packed, &want_scales);
        for_thread_counts([&](int threads) {
          const std::string what = describe(in, threads) + ", scale2 " + std::to_string(scale2);
          std::vector<uint8_t> packed(want_packed.size(), 0xa5), scales(want_scales.size(), 0xa5);
          ASSERT_EQ(mq_cpu_quantize_nvfp4(in.data(), dtype, s.rows, s.cols, scale2, packed.data(),
                                          scales.data()),
                    MQ_OK);
          expect_same(scales, want_scales, what + " block scales");
          expect_same(packed, want_packed, what + " packed");
        });
      }
    }
  }
}

// fp8_block units are one tile row by 16 (bf16, f16) or 8 (f32) tiles.
const Shape kFp8BlockShapes[] = {{1, 1}, {129, 129}, {300, 2500}, {1, 5000}, {260, 1024}};

TEST(CpuPaths, Fp8Block) {
  for (mq_dtype dtype : kDtypes) {
    for (Shape s : kFp8BlockShapes) {
      const Input in = make_input(s.rows, s.cols, dtype, Specials::kRandomBits, 14);
      std::vector<uint8_t> want_q;
      std::vector<float> want_scales;
      oracle_fp8_block(in, &want_q, &want_scales);
      for_thread_counts([&](int threads) {
        const std::string what = describe(in, threads);
        std::vector<uint8_t> q(want_q.size(), 0xa5);
        std::vector<float> scales(want_scales.size(), -1.0f);
        ASSERT_EQ(
            mq_cpu_quantize_fp8_block(in.data(), dtype, s.rows, s.cols, q.data(), scales.data()),
            MQ_OK);
        expect_same_bits(scales, want_scales, what + " tile scales");
        expect_same(q, want_q, what);
      });
    }
  }
}

// int4 bands are 16 rows; groups 128 columns, the last one shorter.
const Shape kInt4Shapes[] = {{8, 8}, {40, 1000}, {264, 136}, {72, 2056}, {16, 128}};

TEST(CpuPaths, Int4) {
  for (mq_dtype dtype : kDtypes) {
    for (Shape s : kInt4Shapes) {
      const Input in = make_input(s.rows, s.cols, dtype, Specials::kNoInf, 15);
      Int4Out want;
      ASSERT_EQ(oracle_int4(in, &want), -1) << "test data must not overflow";
      for_thread_counts([&](int threads) {
        const std::string what = describe(in, threads);
        Int4Out got;
        got.qweight.assign(want.qweight.size(), -1);
        got.scales.assign(want.scales.size(), 0xffff);
        got.qzeros.assign(want.qzeros.size(), -1);
        got.g_idx.assign(want.g_idx.size(), -1);
        ASSERT_EQ(mq_cpu_quantize_int4(in.data(), dtype, s.rows, s.cols, got.qweight.data(),
                                       got.scales.data(), got.qzeros.data(), got.g_idx.data()),
                  MQ_OK)
            << mq_last_error();
        expect_same(got.scales, want.scales, what + " scales");
        expect_same(got.qweight, want.qweight, what + " qweight");
        expect_same(got.qzeros, want.qzeros, what + " qzeros");
        expect_same(got.g_idx, want.g_idx, what + " g_idx");
      });
    }
  }
}

TEST(CpuPaths, Int4ReportsTheFirstOverflowingGroup) {
  // Infinities in several bands and groups: the error names the first in row-major order,
  // (20, group 5), not the first of its band in group order, (25, group 0).
  for (mq_dtype dtype : kDtypes) {
    Input in = make_input(48, 1000, dtype, Specials::kNone, 16);
    const int64_t groups = 8;
    const int64_t hits[][2] = {{40, 900}, {20, 700}, {25, 5}, {33, 5}};
    for (const auto& h : hits) {
      const int64_t i = h[0] * in.cols + h[1];
      if (dtype == MQ_DTYPE_F32) {
        const float inf = std::numeric_limits<float>::infinity();
        memcpy(in.bytes.data() + 4 * i, &inf, 4);
      } else {
        const uint16_t inf = dtype == MQ_DTYPE_BF16 ? 0x7f80 : 0x7c00;
        memcpy(in.bytes.data() + 2 * i, &inf, 2);
      }
    }
    Int4Out want;
    ASSERT_EQ(oracle_int4(in, &want), 20 * groups + 5);
    for_thread_counts([&](int threads) {
      Int4Out got;
      got.qweight.resize(want.qweight.size());
      got.scales.resize(want.scales.size());
      got.qzeros.resize(want.qzeros.size());
      got.g_idx.resize(want.g_idx.size());
      ASSERT_EQ(mq_cpu_quantize_int4(in.data(), dtype, in.rows, in.cols, got.qweight.data(),
                                     got.scales.data(), got.qzeros.data(), got.g_idx.data()),
                MQ_ERR_RANGE)
          << describe(in, threads);
      const std::string msg = mq_last_error();
      EXPECT_NE(msg.find("row 20, group 5 "), std::string::npos) << msg;
    });
  }
}

// ---- dequantizers, on arbitrary bytes (every code, NaN codes included) ---------------------

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = static_cast<uint8_t>(byte(rng));
  return v;
}

TEST(CpuPaths, Dequantizers) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> e(-20.0f, 10.0f);
  for (Shape s : {Shape{1, 16}, Shape{40, 1000}, Shape{264, 2056}, Shape{300, 2560}}) {
    const int64_t rows = s.rows, cols = s.cols, n = rows * cols;
    const std::vector<uint8_t> q = random_bytes(static_cast<size_t>(n), 18);
    std::vector<float> row_scales;
    for (int64_t r = 0; r < rows; ++r) row_scales.push_back(std::exp2(e(rng)));
    for_thread_counts([&](int threads) {
      const std::string what = "[" + std::to_string(rows) + ", " + std::to_string(cols) + "], " +
                               std::to_string(threads) + " thread(s)";
      std::vector<float> got(static_cast<size_t>(n)), want(static_cast<size_t>(n));
      // fp8, per tensor and per row
      for (int per_row = 0; per_row < 2; ++per_row) {
        ASSERT_EQ(
            mq_cpu_dequantize_fp8(q.data(), rows, cols, row_scales.data(), per_row, got.data()),
            MQ_OK);
        for (int64_t i = 0; i < n; ++i) {
          want[static_cast<size_t>(i)] = num::e4m3_to_float(q[static_cast<size_t>(i)]) *
                                         row_scales[per_row ? static_cast<size_t>(i / cols) : 0];
        }
        expect_same_bits(got, want, what + " fp8");
      }
      // nvfp4 (cols % 16 == 0 for every shape here except where noted)
      if (cols % 16 == 0) {
        const std::vector<uint8_t> bs = random_bytes(static_cast<size_t>(n / 16), 19);
        const float scale2 = row_scales[0];
        ASSERT_EQ(mq_cpu_dequantize_nvfp4(q.data(), bs.data(), scale2, rows, cols, got.data()),
                  MQ_OK);
        for (int64_t i = 0; i < n; ++i) {
          const uint8_t byte = q[static_cast<size_t>(i / 2)];
          const uint8_t code = (i % 2) ? static_cast<uint8_t>(byte >> 4) : (byte & 0xfu);
          want[static_cast<size_t>(i)] =
              num::e2m1_to_float(code) *
              (num::e4m3_to_float(bs[static_cast<size_t>(i / 16)]) * scale2);
        }
        expect_same_bits(got, want, what + " nvfp4");
      }
      // fp8_block
      const int64_t tc = (cols + 127) / 128;
      std::vector<float> tiles;
      for (int64_t t = 0; t < ((rows + 127) / 128) * tc; ++t) tiles.push_back(std::exp2(e(rng)));
      ASSERT_EQ(mq_cpu_dequantize_fp8_block(q.data(), tiles.data(), rows, cols, got.data()), MQ_OK);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t r = i / cols, c = i % cols;
        want[static_cast<size_t>(i)] = num::e4m3_to_float(q[static_cast<size_t>(i)]) *
                                       tiles[static_cast<size_t>((r / 128) * tc + c / 128)];
      }
      expect_same_bits(got, want, what + " fp8_block");
      // int4 (rows, cols % 8 == 0), with every fp16 scale pattern but NaN
      if (rows % 8 == 0 && cols % 8 == 0) {
        const int64_t groups = (cols + 127) / 128;
        std::vector<int32_t> qweight(static_cast<size_t>(n / 8));
        memcpy(qweight.data(), q.data(), qweight.size() * 4);
        std::vector<uint16_t> scales(static_cast<size_t>(groups * rows));
        for (size_t k = 0; k < scales.size(); ++k) {
          scales[k] =
              static_cast<uint16_t>((k * 40503u) % 0x7c01u) | static_cast<uint16_t>((k & 1u) << 15);
        }
        ASSERT_EQ(mq_cpu_dequantize_int4(qweight.data(), scales.data(), rows, cols, got.data()),
                  MQ_OK);
        for (int64_t o = 0; o < rows; ++o) {
          for (int64_t i = 0; i < cols; ++i) {
            const uint32_t word =
                static_cast<uint32_t>(qweight[static_cast<size_t>((i / 8) * rows + o)]);
            const int32_t v = static_cast<int32_t>((word >> (4 * (i % 8))) & 0xfu) - 8;
            want[static_cast<size_t>(o * cols + i)] =
                static_cast<float>(v) *
                num::half_to_float(scales[static_cast<size_t>((i / 128) * rows + o)]);
          }
        }
        expect_same_bits(got, want, what + " int4");
      }
    });
  }
}

}  // namespace
