// Device pieces shared by the quantize kernels (per-matrix and batched): element unpacking,
// the NaN-propagating max, the exact element path, and the fp8 vector encoder. Everything here is
// a rounding rule of numerics.h or a fast path proven equal to it (quant_math.cuh).
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include <cstdio>
#include <string>

#include "cuda_utils.cuh"
#include "quant_math.cuh"

namespace moequant {
namespace kernels {
namespace cuda {

constexpr int kThreads = 256;

// The elements of one 16-byte vector as floats. bf16 by a shift; f16 by the hardware converter
// (exact for every non-NaN half, as num::half_to_float).
template <mq_dtype D>
__device__ __forceinline__ void unpack_vec(const uint4& v, float (&x)[kVecElems<D>]) {
  if constexpr (D == MQ_DTYPE_F32) {
    x[0] = __uint_as_float(v.x);
    x[1] = __uint_as_float(v.y);
    x[2] = __uint_as_float(v.z);
    x[3] = __uint_as_float(v.w);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = vec_word(v, i);
      if constexpr (D == MQ_DTYPE_BF16) {
        x[2 * i] = __uint_as_float(w << 16);
        x[2 * i + 1] = __uint_as_float(w & 0xffff0000u);
      } else {
        x[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xffffu)));
        x[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
      }
    }
  }
}

// Sign bits (bit 7 of each byte) of elements 4j..4j+3 of a vector; j is a compile-time constant.
template <mq_dtype D>
__device__ __forceinline__ uint32_t vec_signs(const uint4& v, int j) {
  if constexpr (D == MQ_DTYPE_F32) {
    return signs_of_words(v.x, v.y, v.z, v.w);
  } else {
    return j == 0 ? signs_of_halves(v.x, v.y) : signs_of_halves(v.z, v.w);
  }
}

// max(a, b) that returns NaN when either is NaN (so a NaN input reaches the exact path).
__device__ __forceinline__ float fmax_nan(float a, float b) {
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

// Element value by index, exactly as the CPU path reads it.
template <mq_dtype D>
__device__ __forceinline__ float elem_at(const void* w, int64_t i) {
  return DType<D>::to_float(load_elem_bits<D>(w, i));
}

// q = v / d for v < 2^32, d >= 1, by a multiply-high (Granlund-Montgomery, round-up variant).
struct DivU32 {
  uint32_t mul = 0;
  uint32_t shift = 0;
  static DivU32 make(uint32_t d) {
    DivU32 r;
    while ((uint64_t{1} << r.shift) < d) ++r.shift;
    r.mul = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << r.shift) - d)) / d + 1);
    return r;
  }
  __device__ __forceinline__ uint32_t div(uint32_t v) const {
    return static_cast<uint32_t>((static_cast<uint64_t>(__umulhi(v, mul)) + v) >> shift);
  }
};

// ---- fp8 per-tensor / per-row ---------------------------------------------------------------

// e4m3 bytes of one vector's elements divided by b (y = __frcp_rn(b)), 4 per word in o. Returns
// nonzero when a quotient was NaN (an overflow or a NaN/Inf input): then the exact path decides.
template <mq_dtype D>
__device__ __forceinline__ uint32_t fp8_vec_fast(const uint4& v, float b, float y,
                                                 uint32_t (&o)[kVecElems<D> / 4]) {
  constexpr int kPer = kVecElems<D>;
  float x[kPer];
  unpack_vec<D>(v, x);
  float q[kPer];
#pragma unroll
  for (int k = 0; k < kPer; ++k) q[k] = fast_div(x[k], b, y);
  uint32_t nan = 0;
#pragma unroll
  for (int j = 0; j < kPer / 4; ++j) {
    const uint32_t hw = e4m3x4_hw(q[4 * j], q[4 * j + 1], q[4 * j + 2], q[4 * j + 3]);
    nan |= e4m3_nan_bits(hw);
    o[j] = e4m3_with_signs(hw, vec_signs<D>(v, j));
  }
  return nan & 0x80808080u;
}

template <mq_dtype D>
__device__ __forceinline__ void store_fp8_vec(uint8_t* dst, const uint32_t (&o)[kVecElems<D> / 4]) {
  if constexpr (kVecElems<D> == 8) {
    st_vec8(dst, make_uint2(o[0], o[1]));
  } else {
    st_vec4(dst, o[0]);
  }
}

// Elements [i0, i0 + count) through numerics.h.
template <mq_dtype D>
__device__ __forceinline__ void fp8_elems_exact(const void* w, int64_t i0, int count, float scale,
                                                uint8_t* out) {
#pragma unroll 1
  for (int k = 0; k < count; ++k) out[i0 + k] = num::float_to_e4m3(elem_at<D>(w, i0 + k) / scale);
}

constexpr uint32_t kNibbleOnes = 0x11111111u;  // sum of 16^k, k = 0..7

inline std::string float_text(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
