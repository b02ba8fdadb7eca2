// nvfp4 element codes without a division per element: per-scale threshold tables.
//
// docs/formats.md: code(x) = e2m1(RN(x / d)), d = e4m3(sc) * scale2 per block. For a fixed d > 0
// the index part idx(a) = e2m1(RN(a / d)) & 7 of a magnitude a >= 0 is monotone non-decreasing in a
// (RN of the quotient is monotone, and so is the e2m1 index of a non-negative value), so on the
// 16-bit input grid it is a count of thresholds:
//     idx(a) = #{k in 1..7 : a >= X_k},  X_k = the least 16-bit magnitude with idx >= k.
// The sign bit is (RN(x / d) < 0), i.e. x < 0 and RN(|x| / d) != 0; when the least positive
// input divided by d does not round to zero (`ok` below), that is just "x is negative and not
// -0". There are 126 possible block scales per matrix, so the 7 thresholds of every scale code
// are found once per CTA (exactly, with the numerics.h rule and IEEE division, by a bracketed
// binary search whose bracket only speeds it up), and a block's 16 codes are then 16 compares
// and 16 adds on packed pairs (bf16x2 / f16x2: two elements per instruction, no unpacking):
//     acc = base + 8 * [x < 0];  acc += [a >= X_k] for k = 1..7   (exact small integers)
// with base = 128 (bf16) or 1024 (f16), where the ulp is 1, so the low byte of each lane of acc
// is the 4-bit code. tests/gpu/test_quant_math_gpu.cu checks the packed operations exhaustively
// and the table codes against numerics.h for every input, every scale code and many scale2.
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>

#include "cuda_utils.cuh"

namespace moequant {
namespace kernels {
namespace cuda {

// ---- packed 16-bit operations (two lanes per 32-bit word) ------------------------------------

// Per lane: 1.0 where a >= b, else 0.0 (IEEE compare of the lane values; false for NaN).
template <mq_dtype D>
__device__ __forceinline__ uint32_t set_ge_x2(uint32_t a, uint32_t b) {
  uint32_t r;
  if constexpr (D == MQ_DTYPE_BF16) {
    asm("set.ge.bf16x2.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  } else {
    asm("set.ge.f16x2.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  }
  return r;
}

// Per lane: 1.0 where a < b, else 0.0.
template <mq_dtype D>
__device__ __forceinline__ uint32_t set_lt_x2(uint32_t a, uint32_t b) {
  uint32_t r;
  if constexpr (D == MQ_DTYPE_BF16) {
    asm("set.lt.bf16x2.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  } else {
    asm("set.lt.f16x2.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  }
  return r;
}

// Per lane: RN(a + b).
template <mq_dtype D>
__device__ __forceinline__ uint32_t add_x2(uint32_t a, uint32_t b) {
  uint32_t r;
  if constexpr (D == MQ_DTYPE_BF16) {
    asm("add.rn.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  } else {
    asm("add.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  }
  return r;
}

// Per lane: RN(a * b + c).
template <mq_dtype D>
__device__ __forceinline__ uint32_t fma_x2(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t r;
  if constexpr (D == MQ_DTYPE_BF16) {
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  } else {
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  }
  return r;
}

// Per lane: max of two magnitudes (sign bits clear), NaN if either is NaN.
template <mq_dtype D>
__device__ __forceinline__ uint32_t max_nan_x2(uint32_t a, uint32_t b) {
  uint32_t r;
  if constexpr (D == MQ_DTYPE_BF16) {
    asm("max.NaN.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  } else {
    asm("max.NaN.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  }
  return r;
}

// Lane values of the accumulator: base (ulp 1 there), 8.0 and 1.0, in both lanes.
template <mq_dtype D>
struct PackedConst {
  static constexpr uint32_t kBase = D == MQ_DTYPE_BF16 ? 0x43004300u : 0x64006400u;   // 128, 1024
  static constexpr uint32_t kEight = D == MQ_DTYPE_BF16 ? 0x41004100u : 0x48004800u;  // 8.0
  static constexpr uint32_t kMagMask = 0x7fff7fffu;
};

// ---- the table --------------------------------------------------------------------------------

// Row c (an e4m3 scale code) of the table: words 0..6 hold X_1..X_7 in both lanes, word 7 is 1
// when the codes of that scale may be taken from the table (d finite, normal, and the least
// positive input does not divide to zero), else 0 (the block then takes the exact path).
constexpr int kNvfp4TableRows = 128;
constexpr int kNvfp4TableWords = 8;

// e2m1 index (0..7) of the 16-bit magnitude `pattern` divided by d: the numerics.h rule.
template <mq_dtype D>
__device__ __forceinline__ uint32_t e2m1_index_of(int32_t pattern, float d) {
  return num::float_to_e2m1(DType<D>::to_float(static_cast<uint32_t>(pattern)) / d) & 7u;
}

// X_k for divisor d (finite, normal): the least magnitude pattern p in [0, Inf] with
// idx(p) >= k (the Inf pattern always qualifies: Inf / d = Inf has index 7). Binary search with
// the invariant idx(lo) < k <= idx(hi) (lo = -1: below every pattern); the first guesses bracket
// the pattern of b_k * d, where the quotient crosses the k-th e2m1 boundary, and are kept only
// when they satisfy the invariant, so a poor guess costs time, never correctness.
template <mq_dtype D>
__device__ __forceinline__ uint32_t nvfp4_threshold(int k, float d) {
  constexpr int32_t kInfPattern = static_cast<int32_t>(DType<D>::kInf);
  // e2m1 boundaries 0.25, 0.75, 1.25, 1.75 (k = 1..4), 2.5, 3.5 (k = 5, 6), 5 (k = 7)
  const float boundary = k <= 4 ? 0.5f * k - 0.25f : (k <= 6 ? k - 2.5f : 5.0f);
  const float e = boundary * d;
  int32_t guess;
  if constexpr (D == MQ_DTYPE_BF16) {
    guess = static_cast<int32_t>(__float_as_uint(e) >> 16);
  } else {
    guess = static_cast<int32_t>(__half_as_ushort(__float2half_rz(e)));
  }
  guess = min(max(guess, 0), kInfPattern);
  int32_t lo = -1, hi = kInfPattern;
  if (guess - 2 >= 0 && e2m1_index_of<D>(guess - 2, d) < static_cast<uint32_t>(k)) lo = guess - 2;
  if (guess + 2 < kInfPattern && e2m1_index_of<D>(guess + 2, d) >= static_cast<uint32_t>(k)) {
    hi = guess + 2;
  }
  while (hi - lo > 1) {
    const int32_t mid = lo + (hi - lo) / 2;
    if (e2m1_index_of<D>(mid, d) >= static_cast<uint32_t>(k)) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return static_cast<uint32_t>(hi);
}

// Word `word` of row `code` for this scale2 (the divisor is num::e4m3_to_float(code) * scale2,
// as in numerics.h).
template <mq_dtype D>
__device__ __forceinline__ uint32_t nvfp4_table_word(int code, int word, float scale2) {
  const float d = num::e4m3_to_float(static_cast<uint8_t>(code)) * scale2;
  const float least = DType<D>::to_float(1u);  // the least positive input
  const bool ok = d >= 0x1p-126f && d <= 0x1.fffffep127f && least / d > 0.0f;  // false for NaN
  if (word == kNvfp4TableWords - 1) return ok ? 1u : 0u;
  if (!ok) return 0u;
  const uint32_t x = nvfp4_threshold<D>(word + 1, d);
  return x | (x << 16);
}

// Fills table[kNvfp4TableRows * kNvfp4TableWords] (shared memory) with all threads of the CTA;
// the caller synchronizes before reading it.
template <mq_dtype D, int kThreads>
__device__ __forceinline__ void nvfp4_build_table(float scale2, uint32_t* table) {
  for (int i = threadIdx.x; i < kNvfp4TableRows * kNvfp4TableWords; i += kThreads) {
    table[i] = nvfp4_table_word<D>(i / kNvfp4TableWords, i % kNvfp4TableWords, scale2);
  }
}

// The 8 codes (one packed word, element 2j in the low nibble of byte j) of the 8 elements of the
// 16-byte vector v, from the thresholds t[0..6] of their block's scale.
template <mq_dtype D>
__device__ __forceinline__ uint32_t nvfp4_codes_from_table(const uint4& v, const uint32_t (&t)[7]) {
  using C = PackedConst<D>;
  uint32_t acc[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t x = vec_word(v, i);
    const uint32_t a = x & C::kMagMask;
    uint32_t s = fma_x2<D>(set_lt_x2<D>(x, 0u), C::kEight, C::kBase);  // base + 8 * [x < 0]
#pragma unroll
    for (int k = 0; k < 7; ++k) s = add_x2<D>(s, set_ge_x2<D>(a, t[k]));
    acc[i] = s;
  }
  // low byte of each lane = its code: gather them as nibbles
  uint32_t p = __byte_perm(acc[0], acc[1], 0x6420);  // codes 0..3, one per byte
  uint32_t q = __byte_perm(acc[2], acc[3], 0x6420);  // codes 4..7
  p |= p >> 4;                                       // bytes 0, 2: codes 0|1, 2|3 as nibbles
  q |= q >> 4;
  return __byte_perm(p, q, 0x6420);
}

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
