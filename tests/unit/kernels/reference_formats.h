// Independent reference of docs/formats.md for the kernel tests.
//
// Deliberately written without numerics.h and by different methods, so an error in the shared
// rounding code cannot hide by being copied into its own check:
//   - e4m3 and e2m1 round by searching the table of representable values (built from the code
//     fields with ldexp) for the neighbours of x and comparing x with their exact midpoint in
//     double; ties go to the even code;
//   - float16 goes through the compiler's _Float16 (libgcc / F16C), bf16 through bit shifts;
//   - round-half-even on integers is floor-based.
// Plain loops, no threads: slow and obviously correct.
#pragma once

#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "moequant/kernels/kernels.h"

namespace ref {

inline uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
inline float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// ---- 16-bit floats ----

inline float bf16_value(uint16_t h) {
  return float_of(static_cast<uint32_t>(h) << 16);
}
// float -> bf16 by dropping the low 16 bits (tests only feed values exact in bf16, or accept
// the truncated value: the reference always reads the encoded input back).
inline uint16_t bf16_truncate(float f) {
  return static_cast<uint16_t>(bits_of(f) >> 16);
}

inline float f16_value(uint16_t h) {
  _Float16 v;
  memcpy(&v, &h, 2);
  return static_cast<float>(v);
}
inline uint16_t f16_bits(float f) {
  const _Float16 v = static_cast<_Float16>(f);
  uint16_t h;
  memcpy(&h, &v, 2);
  return h;
}
inline bool f16_is_finite(uint16_t h) {
  return (h & 0x7c00u) != 0x7c00u;
}

// ---- float8 e4m3fn ----

// Value of an e4m3fn code from its fields: 1 sign, 4 exponent (bias 7), 3 mantissa bits;
// exponent 0 is subnormal (m/8 * 2^-6), S.1111.111 is NaN, there is no infinity.
inline double e4m3_value(uint8_t code) {
  const int e = (code >> 3) & 15, m = code & 7;
  const double sign = (code & 0x80) ? -1.0 : 1.0;
  if (e == 15 && m == 7) return std::nan("");
  if (e == 0) return sign * std::ldexp(m / 8.0, -6);
  return sign * std::ldexp(1.0 + m / 8.0, e - 7);
}

// Values of the finite non-negative codes 0x00..0x7e, increasing with the code.
inline const std::vector<double>& e4m3_magnitudes() {
  static const std::vector<double> mags = [] {
    std::vector<double> m;
    for (int c = 0; c <= 0x7e; ++c) m.push_back(e4m3_value(static_cast<uint8_t>(c)));
    return m;
  }();
  return mags;
}

// Nearest e4m3 code to x: neighbours from the table, exact midpoint, ties to the even code
// (= even mantissa), saturation at 448, sign bit copied from x.
inline uint8_t e4m3_code(float x) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  if (std::isnan(x)) return sign | 0x7f;
  const double a = std::fabs(static_cast<double>(x));
  if (a >= 448.0) return sign | 0x7e;
  const std::vector<double>& mags = e4m3_magnitudes();
  // mags is increasing; lo = the largest code whose value is <= a (a < 448 keeps lo < 0x7e).
  const uint8_t lo =
      static_cast<uint8_t>(std::upper_bound(mags.begin(), mags.end(), a) - mags.begin() - 1);
  const uint8_t hi = static_cast<uint8_t>(lo + 1);
  const double mid = (mags[lo] + mags[hi]) / 2;  // exact in double
  uint8_t pick;
  if (a < mid)
    pick = lo;
  else if (a > mid)
    pick = hi;
  else
    pick = (lo % 2 == 0) ? lo : hi;
  return sign | pick;
}

// ---- float4 e2m1 ----

constexpr double kE2m1Magnitudes[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};

inline float e2m1_value(uint8_t code) {
  const float m = static_cast<float>(kE2m1Magnitudes[code & 7]);
  return (code & 8) ? -m : m;
}

// Nearest of the 8 magnitudes, ties to the even index, saturating at 6; bit 3 is (y < 0).
inline uint8_t e2m1_code(float y) {
  const double a = std::fabs(static_cast<double>(y));
  int idx;
  if (a >= 6.0) {
    idx = 7;
  } else {
    int lo = 0;
    while (lo + 1 < 8 && kE2m1Magnitudes[lo + 1] <= a) ++lo;
    const double mid = (kE2m1Magnitudes[lo] + kE2m1Magnitudes[lo + 1]) / 2;
    if (a < mid)
      idx = lo;
    else if (a > mid)
      idx = lo + 1;
    else
      idx = (lo % 2 == 0) ? lo : lo + 1;
  }
  return static_cast<uint8_t>((y < 0.0f ? 8 : 0) | idx);
}

// ---- inputs ----

inline float element(const void* w, mq_dtype dtype, size_t i) {
  switch (dtype) {
    case MQ_DTYPE_BF16:
      return bf16_value(static_cast<const uint16_t*>(w)[i]);
    case MQ_DTYPE_F16:
      return f16_value(static_cast<const uint16_t*>(w)[i]);
    case MQ_DTYPE_F32:
      return static_cast<const float*>(w)[i];
  }
  return 0.0f;
}

// A weight in one dtype: its raw bytes and the float32 values they hold.
struct Weight {
  int64_t rows = 0, cols = 0;
  mq_dtype dtype = MQ_DTYPE_F32;
  std::vector<uint8_t> bytes;
  std::vector<float> values;
  const void* data() const { return bytes.data(); }
};

inline Weight encode(const std::vector<float>& v, int64_t rows, int64_t cols, mq_dtype dtype) {
  Weight w;
  w.rows = rows;
  w.cols = cols;
  w.dtype = dtype;
  const size_t n = v.size();
  if (dtype == MQ_DTYPE_F32) {
    w.bytes.resize(n * 4);
    if (n > 0) memcpy(w.bytes.data(), v.data(), n * 4);  // data() of an empty vector may be null
  } else {
    std::vector<uint16_t> h(n);
    for (size_t i = 0; i < n; ++i)
      h[i] = dtype == MQ_DTYPE_BF16 ? bf16_truncate(v[i]) : f16_bits(v[i]);
    w.bytes.resize(n * 2);
    if (n > 0) memcpy(w.bytes.data(), h.data(), n * 2);
  }
  w.values.resize(n);
  for (size_t i = 0; i < n; ++i) w.values[i] = element(w.bytes.data(), dtype, i);
  return w;
}

// ---- quantizers, as docs/formats.md writes them ----

inline float amax_of(const std::vector<float>& v, size_t begin, size_t end, size_t stride = 1) {
  float m = 0.0f;
  for (size_t i = begin; i < end; i += stride) m = std::max(m, std::fabs(v[i]));
  return m;
}

inline float fp8_scale(float amax) {
  return amax == 0.0f ? 1.0f : amax / 448.0f;
}

inline std::vector<uint8_t> quantize_fp8(const Weight& w, const std::vector<float>& scales,
                                         bool per_row) {
  std::vector<uint8_t> out(w.values.size());
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) {
      const size_t i = static_cast<size_t>(r * w.cols + c);
      out[i] = e4m3_code(w.values[i] / scales[per_row ? r : 0]);
    }
  return out;
}

struct Nvfp4 {
  std::vector<uint8_t> packed, block_scales;
};

inline Nvfp4 quantize_nvfp4(const Weight& w, float scale2) {
  Nvfp4 q;
  const int64_t nb = w.cols / 16;
  q.packed.assign(static_cast<size_t>(w.rows * w.cols / 2), 0);
  q.block_scales.resize(static_cast<size_t>(w.rows * nb));
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      const size_t begin = static_cast<size_t>(r * w.cols + b * 16);
      float s = amax_of(w.values, begin, begin + 16) / (6.0f * scale2);
      if (s == 0.0f) s = 1.0f;
      s = std::min(std::max(s, std::ldexp(1.0f, -9)), 448.0f);
      const uint8_t sb = e4m3_code(s);
      q.block_scales[static_cast<size_t>(r * nb + b)] = sb;
      const float divisor = static_cast<float>(e4m3_value(sb)) * scale2;
      for (size_t k = 0; k < 16; ++k) {
        const uint8_t code = e2m1_code(w.values[begin + k] / divisor);
        const size_t e = begin + k;
        q.packed[e / 2] |= static_cast<uint8_t>((e % 2 == 0) ? code : code << 4);
      }
    }
  return q;
}

struct Fp8Block {
  std::vector<uint8_t> q;
  std::vector<float> scales;  // [ceil(rows/128), ceil(cols/128)]
};

inline Fp8Block quantize_fp8_block(const Weight& w) {
  Fp8Block out;
  const int64_t tr = (w.rows + 127) / 128, tc = (w.cols + 127) / 128;
  out.q.resize(w.values.size());
  out.scales.resize(static_cast<size_t>(tr * tc));
  for (int64_t ti = 0; ti < tr; ++ti)
    for (int64_t tj = 0; tj < tc; ++tj) {
      float amax = 0.0f;
      for (int64_t r = ti * 128; r < std::min(w.rows, ti * 128 + 128); ++r)
        for (int64_t c = tj * 128; c < std::min(w.cols, tj * 128 + 128); ++c)
          amax = std::max(amax, std::fabs(w.values[static_cast<size_t>(r * w.cols + c)]));
      const float scale = fp8_scale(amax);
      out.scales[static_cast<size_t>(ti * tc + tj)] = scale;
      for (int64_t r = ti * 128; r < std::min(w.rows, ti * 128 + 128); ++r)
        for (int64_t c = tj * 128; c < std::min(w.cols, tj * 128 + 128); ++c) {
          const size_t i = static_cast<size_t>(r * w.cols + c);
          out.q[i] = e4m3_code(w.values[i] / scale);
        }
    }
  return out;
}

// Round half to even via floor; NaN (0/0 after a scale underflowed to fp16 zero) gives the
// zero point, the rule numerics.h documents for that case.
inline int int4_level(float w, float stored_scale) {
  const double v = static_cast<double>(w / stored_scale);
  if (std::isnan(v)) return 0;
  if (v >= 7.0) return 7;
  if (v <= -8.0) return -8;
  const double f = std::floor(v);
  const double frac = v - f;
  double r = f;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(f, 2.0) != 0.0)) r = f + 1;
  return static_cast<int>(r);
}

struct Int4 {
  std::vector<int32_t> qweight, qzeros, g_idx;
  std::vector<uint16_t> scales;
  bool overflow = false;
};

inline Int4 quantize_int4(const Weight& w) {
  Int4 out;
  const int64_t rows = w.rows, cols = w.cols, groups = (cols + 127) / 128;
  out.scales.resize(static_cast<size_t>(groups * rows));
  std::vector<int> level(w.values.size());
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      const size_t begin = static_cast<size_t>(o * cols + g * 128);
      const size_t end = static_cast<size_t>(o * cols + std::min(cols, g * 128 + 128));
      const float amax = amax_of(w.values, begin, end);
      const float scale = amax == 0.0f ? 1.0f : amax / 7.0f;
      const uint16_t h = f16_bits(scale);
      if (!f16_is_finite(h)) out.overflow = true;
      out.scales[static_cast<size_t>(g * rows + o)] = h;
      for (size_t i = begin; i < end; ++i) level[i] = int4_level(w.values[i], f16_value(h));
    }
  out.qweight.assign(static_cast<size_t>(cols / 8 * rows), 0);
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t i = 0; i < cols; ++i) {
      const uint32_t nibble = static_cast<uint32_t>(level[static_cast<size_t>(o * cols + i)] + 8);
      int32_t& word = out.qweight[static_cast<size_t>((i / 8) * rows + o)];
      word = static_cast<int32_t>(static_cast<uint32_t>(word) | (nibble << (4 * (i % 8))));
    }
  out.qzeros.assign(static_cast<size_t>(groups * rows / 8), 0x77777777);
  for (int64_t i = 0; i < cols; ++i) out.g_idx.push_back(static_cast<int32_t>(i / 128));
  return out;
}

// ---- dequantizers (code value times scale; nvfp4's two scales multiplied first) ----

inline std::vector<float> dequantize_fp8(const std::vector<uint8_t>& q, int64_t rows, int64_t cols,
                                         const std::vector<float>& scales, bool per_row) {
  std::vector<float> out(q.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(r * cols + c);
      out[i] = static_cast<float>(e4m3_value(q[i])) * scales[per_row ? r : 0];
    }
  return out;
}

inline std::vector<float> dequantize_nvfp4(const Nvfp4& q, float scale2, int64_t rows,
                                           int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < out.size(); ++i) {
    const uint8_t code = (i % 2 == 0) ? (q.packed[i / 2] & 15) : (q.packed[i / 2] >> 4);
    const float s = static_cast<float>(e4m3_value(q.block_scales[i / 16])) * scale2;
    out[i] = e2m1_value(code) * s;
  }
  return out;
}

inline std::vector<float> dequantize_fp8_block(const Fp8Block& q, int64_t rows, int64_t cols) {
  std::vector<float> out(q.q.size());
  const int64_t tc = (cols + 127) / 128;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(r * cols + c);
      out[i] = static_cast<float>(e4m3_value(q.q[i])) *
               q.scales[static_cast<size_t>((r / 128) * tc + c / 128)];
    }
  return out;
}

inline std::vector<float> dequantize_int4(const Int4& q, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t i = 0; i < cols; ++i) {
      const uint32_t word =
          static_cast<uint32_t>(q.qweight[static_cast<size_t>((i / 8) * rows + o)]);
      const int level = static_cast<int>((word >> (4 * (i % 8))) & 15) - 8;
      out[static_cast<size_t>(o * cols + i)] =
          static_cast<float>(level) *
          f16_value(q.scales[static_cast<size_t>((i / 128) * rows + o)]);
    }
  return out;
}

}  // namespace ref
