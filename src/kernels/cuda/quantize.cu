// CUDA quantizers (FORMATS.md): fp8 per-tensor/per-row, nvfp4, fp8 128x128 blocks, GPTQ int4.
//
// Every output byte equals the CPU path's (numerics.h). Each format has a fast kernel for the
// common layout (16-byte aligned input; nvfp4 and int4 also 16-bit input) whose per-element work
// is a handful of instructions (quant_math.cuh: one division by a prepared reciprocal, hardware
// e4m3, e2m1 and int4 codes by one rounding each), and the exact numerics.h code for everything
// else: other alignments, and, inside the fast kernels, any scale or value outside the range where
// the fast path is proven equal (rare: a NaN/Inf input, a scale below 2^-60, ...), so the bytes
// never depend on which path ran. Loads are 16-byte vectors, one per lane and instruction with
// consecutive lanes on consecutive vectors (whole 512-byte warp accesses), several in flight per
// thread before the first use.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cpu/arg_checks.h"
#include "cuda_utils.cuh"
#include "op_args.h"
#include "quant_math.cuh"

namespace moequant {
namespace kernels {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// ---- shared device pieces ---------------------------------------------------------------------

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

// Vector path: w 16-byte aligned; per row, cols % kVecElems == 0 (a vector never spans rows) and
// the vector count below 2^31. Thread t of T handles vectors t, t + T, ..., kU of them in flight.
constexpr int kFp8Unroll = 4;

template <mq_dtype D, bool kPerRow>
__global__ void __launch_bounds__(kThreads)
    quantize_fp8_vec_kernel(const void* __restrict__ w, int64_t n, int64_t nvec, DivU32 vec_per_row,
                            const float* __restrict__ scales, uint8_t* __restrict__ out) {
  constexpr int kPer = kVecElems<D>;
  const uint4* src = static_cast<const uint4*>(w);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  float b = 0.0f, y = 0.0f;
  bool ok = true;
  if (!kPerRow) {
    b = scales[0];
    y = __frcp_rn(b);
    ok = fast_div_ok(b);
  }
  for (int64_t v0 = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; v0 < nvec;
       v0 += kFp8Unroll * stride) {
    uint4 in[kFp8Unroll];
#pragma unroll
    for (int j = 0; j < kFp8Unroll; ++j) {
      const int64_t v = v0 + j * stride;
      in[j] = v < nvec ? ld_vec(src + v) : make_uint4(0, 0, 0, 0);
    }
    uint32_t bad = 0;
#pragma unroll
    for (int j = 0; j < kFp8Unroll; ++j) {
      const int64_t v = v0 + j * stride;
      float bj = b, yj = y;
      bool okj = ok;
      if (kPerRow) {
        bj = __ldg(scales + vec_per_row.div(static_cast<uint32_t>(min(v, nvec - 1))));
        yj = __frcp_rn(bj);
        okj = fast_div_ok(bj);
      }
      uint32_t o[kPer / 4];
      const uint32_t nan = fp8_vec_fast<D>(in[j], bj, yj, o);
      if (v < nvec) {
        if (okj && nan == 0) {
          store_fp8_vec<D>(out + v * kPer, o);
        } else {
          bad |= 1u << j;
        }
      }
    }
    if (bad != 0) {
#pragma unroll 1
      for (int j = 0; j < kFp8Unroll; ++j) {
        if (((bad >> j) & 1u) == 0) continue;
        const int64_t v = v0 + j * stride;
        const float s = kPerRow ? scales[vec_per_row.div(static_cast<uint32_t>(v))] : b;
        fp8_elems_exact<D>(w, v * kPer, kPer, s, out);
      }
    }
  }
  if (!kPerRow && blockIdx.x == 0) {  // the last n % kPer elements
    const int64_t i = nvec * kPer + threadIdx.x;
    if (i < n) fp8_elems_exact<D>(w, i, 1, b, out);
  }
}

// Element-wise path (any alignment). Groups of 16 elements per thread, grid-stride; per-row
// scales change at row boundaries inside a group.
template <mq_dtype D, bool kPerRow>
__global__ void __launch_bounds__(kThreads)
    quantize_fp8_scalar_kernel(const void* __restrict__ w, int64_t n, int64_t cols,
                               const float* __restrict__ scales, uint8_t* __restrict__ out) {
  const int64_t groups = (n + 15) / 16;
  const float tensor_scale = kPerRow ? 0.0f : scales[0];
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; g < groups;
       g += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t i0 = g * 16;
    int64_t row = 0, next_row = 0;
    float scale = tensor_scale;
    if (kPerRow) {
      row = i0 / cols;
      next_row = (row + 1) * cols;
      scale = scales[row];
    }
    const int64_t end = min(n, i0 + 16);
    for (int64_t i = i0; i < end; ++i) {
      if (kPerRow && i >= next_row) {
        ++row;
        next_row += cols;
        scale = scales[row];
      }
      out[i] = num::float_to_e4m3(elem_at<D>(w, i) / scale);
    }
  }
}

// ---- nvfp4 ----------------------------------------------------------------------------------

// Exact path: one 16-element block from its elements given as floats (numerics.h throughout).
__device__ __forceinline__ uint2 nvfp4_block(const float (&x)[16], float block_amax, float scale2,
                                             uint8_t* scale_code) {
  const uint8_t sc = num::nvfp4_block_scale(block_amax, scale2);
  *scale_code = sc;
  const float divisor = num::e4m3_to_float(sc) * scale2;
  uint32_t p[2] = {0, 0};
#pragma unroll
  for (int k = 0; k < 16; ++k) {
    p[k / 8] |= static_cast<uint32_t>(num::float_to_e2m1(x[k] / divisor)) << (4 * (k % 8));
  }
  return make_uint2(p[0], p[1]);
}

// Generic path (f32 input, or pointers the pair kernel cannot take): each thread takes a pair of
// blocks, element by element or from 16-byte loads (kVec). The block amax is taken as the CPU
// takes it (a NaN is skipped by `a > m`).
template <mq_dtype D, bool kVec>
__global__ void __launch_bounds__(kThreads, 4)
    quantize_nvfp4_kernel(const void* __restrict__ w, int64_t num_blocks, float scale2,
                          uint8_t* __restrict__ packed, uint8_t* __restrict__ block_scales) {
  constexpr int kPer = kVecElems<D>;
  constexpr int kLoads = 16 / kPer;  // 16-byte loads per block
  const int64_t pairs = (num_blocks + 1) / 2;
  for (int64_t pr = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; pr < pairs;
       pr += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t b0 = 2 * pr;
    const int nb = b0 + 1 < num_blocks ? 2 : 1;
    for (int j = 0; j < nb; ++j) {
      const int64_t b = b0 + j;
      float x[16];
      if (kVec) {
        const unsigned char* src = static_cast<const unsigned char*>(w) + b * 16 * DType<D>::kSize;
        uint4 v[kLoads];
#pragma unroll
        for (int l = 0; l < kLoads; ++l) v[l] = ld_vec(src + l * kVecBytes);
#pragma unroll
        for (int k = 0; k < 16; ++k) x[k] = vec_elem<D>(v[k / kPer], k % kPer);
      } else {
#pragma unroll
        for (int k = 0; k < 16; ++k) x[k] = elem_at<D>(w, b * 16 + k);
      }
      float m = 0.0f;
#pragma unroll
      for (int k = 0; k < 16; ++k) {
        const float a = num::abs_f(x[k]);
        m = a > m ? a : m;
      }
      uint8_t sc = 0;
      const uint2 p = nvfp4_block(x, m, scale2, &sc);
      if (kVec) {
        st_vec8(packed + b * 8, p);
      } else {
        for (int k = 0; k < 4; ++k) packed[b * 8 + k] = static_cast<uint8_t>(p.x >> (8 * k));
        for (int k = 0; k < 4; ++k) packed[b * 8 + 4 + k] = static_cast<uint8_t>(p.y >> (8 * k));
      }
      block_scales[b] = sc;
    }
  }
}

// Exact path for half `v & 1` of block v / 2 (vector v of the pair kernel): the block's amax,
// scale and the 8 packed nibbles of this half, all through numerics.h; the scale byte is written
// when `write_scale`.
template <mq_dtype D>
__device__ __forceinline__ void nvfp4_half_exact(const void* w, int64_t v, float scale2,
                                                 bool write_scale, uint8_t* packed,
                                                 uint8_t* block_scales) {
  const int64_t b = v >> 1;
  float m = 0.0f;
#pragma unroll 1
  for (int k = 0; k < 16; ++k) {
    const float a = num::abs_f(elem_at<D>(w, b * 16 + k));
    m = a > m ? a : m;
  }
  const uint8_t sc = num::nvfp4_block_scale(m, scale2);
  if (write_scale) block_scales[b] = sc;
  const float divisor = num::e4m3_to_float(sc) * scale2;
  uint32_t word = 0;
#pragma unroll 1
  for (int k = 0; k < 8; ++k) {
    word |= static_cast<uint32_t>(num::float_to_e2m1(elem_at<D>(w, v * 8 + k) / divisor))
            << (4 * k);
  }
  st_vec4(packed + v * 4, word);
}

// Pair kernel, 16-bit input, w 16-byte and packed 4-byte aligned. A block is two 16-byte vectors
// (8 elements each, 4 packed bytes each). A warp takes units of 64 vectors: lane l loads vector
// l of the unit's first half (A) and vector l of its second half (B), so lanes 2i and 2i+1 hold
// block A_i = 32u + i and block B_i = 32u + 16 + i between them. Both lanes get each block's amax
// (one shuffle); the even lane derives block A_i's scale, divisor and reciprocal, the odd lane
// block B_i's, and they swap them (one shuffle each): the per-block work is done once, not twice.
// Each lane then encodes its two halves and stores 4 packed bytes per half (coalesced); the lane
// that derived a scale stores it.
//
// Fast-path condition per block (else its halves take nvfp4_half_exact): the divisor
// d = e4m3(s) * scale2 within [2^-60, 2^6] and block amax <= d * 2^20. Then every quotient w / d
// is <= 2^20 in magnitude, and a nonzero one is >= 2^-133 / 2^6 (bf16's least subnormal;
// f16's is 2^-24), so fast_div returns RN(w / d) wherever the e2m1 code depends on its value
// (|y| in [2^-3, 8]), and elsewhere a value with the same code: the right sign for |y| < 0.25
// (RN(w / d) is never a signed zero for w != 0 here, and -0.0 gives +0), index 7 above 6.
//
// Units per warp and iteration, and the occupancy hint: measured on H100 (bench/run_device.sh),
// unroll 1, 2 and 4 and 40 to 88 registers all land at 0.77-0.80 of copy bandwidth at 16384^2:
// the kernel is issue-bound (SASS hot loop: ~404 instructions per lane and 16 elements, ~16 per
// element of element math and ~9 of per-block work: the block-scale division and __frcp_rn with
// their slow-path checks, shuffles). Unroll 1 is best on small shapes.
constexpr int kNvfp4Unroll = 1;
constexpr uint32_t kNibbleOnes = 0x11111111u;  // sum of 16^k, k = 0..7

template <mq_dtype D>
__global__ void __launch_bounds__(kThreads, 1)
    quantize_nvfp4_pair_kernel(const void* __restrict__ w, int64_t nvec, float scale2,
                               uint8_t* __restrict__ packed, uint8_t* __restrict__ block_scales) {
  static_assert(kVecElems<D> == 8, "16-bit input");
  const uint4* src = static_cast<const uint4*>(w);
  const int lane = threadIdx.x & 31;
  const bool odd = (lane & 1) != 0;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) >> 5;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * kThreads) >> 5;
  const int64_t units = (nvec + 63) / 64;
  const float prod6 = 6.0f * scale2;  // FORMATS.md: the product 6 * weight_scale_2 first
  for (int64_t u0 = warp; u0 < units; u0 += kNvfp4Unroll * warps) {
    uint4 in[kNvfp4Unroll][2];
#pragma unroll
    for (int j = 0; j < kNvfp4Unroll; ++j) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t v = (u0 + j * warps) * 64 + h * 32 + lane;
        in[j][h] = v < nvec ? ld_vec(src + v) : make_uint4(0, 0, 0, 0);
      }
    }
    uint32_t bad = 0;
#pragma unroll
    for (int j = 0; j < kNvfp4Unroll; ++j) {
      const int64_t vbase = (u0 + j * warps) * 64 + lane;
      float x[2][8];
      float m[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        unpack_vec<D>(in[j][h], x[h]);
        float a = fabsf(x[h][0]);
#pragma unroll
        for (int k = 1; k < 8; ++k) a = fmax_nan(a, fabsf(x[h][k]));
        m[h] = fmax_nan(a, __shfl_xor_sync(0xffffffffu, a, 1));
      }
      // this lane's block: A for even lanes, B for odd ones
      const float mb = odd ? m[1] : m[0];
      float s = mb / prod6;  // num::nvfp4_block_scale, with the hardware e4m3 (s > 0 finite)
      if (s == 0.0f) s = 1.0f;
      if (s < num::kNvfp4MinBlockScale) s = num::kNvfp4MinBlockScale;
      if (s > num::kE4M3Max) s = num::kE4M3Max;
      const uint32_t sc = e4m3_positive_hw(s);
      const float d = e4m3_value_hw(sc) * scale2;  // = num::e4m3_to_float(sc) * scale2
      const float yd = __frcp_rn(d);
      const bool ok = d >= 0x1p-60f && d <= 0x1p6f && mb <= d * 0x1p20f;  // false for NaN/Inf
      const float d_p = __shfl_xor_sync(0xffffffffu, d, 1);
      const float y_p = __shfl_xor_sync(0xffffffffu, yd, 1);
      const bool ok_p = __shfl_xor_sync(0xffffffffu, static_cast<int>(ok), 1) != 0;
      const float dh[2] = {odd ? d_p : d, odd ? d : d_p};
      const float yh[2] = {odd ? y_p : yd, odd ? yd : y_p};
      const bool okh[2] = {odd ? ok_p : ok, odd ? ok : ok_p};
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        uint32_t acc = 0;
#pragma unroll
        for (int k = 0; k < 8; ++k) {
          acc += e2m1_code_magic(fast_div(x[h][k], dh[h], yh[h])) << (4 * k);
        }
        const uint32_t word = acc - kE2m1MagicBits * kNibbleOnes;
        const int64_t v = vbase + h * 32;
        if (v < nvec) {
          if (okh[h]) {
            st_vec4(packed + v * 4, word);
          } else {
            bad |= 1u << (2 * j + h);
          }
        }
      }
      const int64_t vs = vbase + (odd ? 32 : 0);  // a vector of this lane's block
      if (ok && vs < nvec) block_scales[vs >> 1] = static_cast<uint8_t>(sc);
    }
    if (bad != 0) {
#pragma unroll 1
      for (int i = 0; i < 2 * kNvfp4Unroll; ++i) {
        if (((bad >> i) & 1u) == 0) continue;
        const int h = i & 1;
        const int64_t v = (u0 + (i >> 1) * warps) * 64 + h * 32 + lane;
        nvfp4_half_exact<D>(w, v, scale2, h == (odd ? 1 : 0), packed, block_scales);
      }
    }
  }
}

// ---- fp8 128x128 blocks -------------------------------------------------------------------

// One CTA per tile. Vector path: a row of the tile is kVecPerRow 16-byte vectors; thread t reads
// vector (t % kVecPerRow) of rows t / kVecPerRow + k * kRowsPerPass, holds the whole tile in
// registers across the amax reduction, then quantizes and stores 16 / size bytes per vector.
// Edge tiles mask rows and vectors outside the matrix (vector path needs cols % (16/size) == 0).
// The quotients are at most 448 (1 + 2^-23) in magnitude (the scale is the tile's amax / 448), so
// fast_div is exact wherever the e4m3 code depends on it; a scale outside fast_div_ok's range or a
// NaN/Inf in the tile sends the whole CTA down the exact path.
template <mq_dtype D>
struct Fp8TileShape {
  static constexpr int kPer = kVecElems<D>;
  static constexpr int kVecPerRow = num::kFp8Tile / kPer;
  static constexpr int kRowsPerPass = kThreads / kVecPerRow;
  static constexpr int kPasses = num::kFp8Tile / kRowsPerPass;
  static constexpr int kMinBlocks = kPasses <= 8 ? 4 : 2;  // registers: the tile stays in them
};

template <mq_dtype D>
__global__ void __launch_bounds__(kThreads, Fp8TileShape<D>::kMinBlocks)
    quantize_fp8_block_vec_kernel(const void* __restrict__ w, int64_t rows, int64_t cols,
                                  int64_t tile_cols, uint8_t* __restrict__ out,
                                  float* __restrict__ tile_scales) {
  using S = Fp8TileShape<D>;
  __shared__ uint32_t smem[kThreads / 32];
  const int64_t t = blockIdx.x;
  const int64_t r0 = (t / tile_cols) * num::kFp8Tile;
  const int64_t c0 = (t % tile_cols) * num::kFp8Tile;
  const int vcol = threadIdx.x % S::kVecPerRow;
  const int64_t c = c0 + static_cast<int64_t>(vcol) * S::kPer;
  const bool col_ok = c < cols;
  const unsigned char* base = static_cast<const unsigned char*>(w);

  uint4 v[S::kPasses];
  uint32_t acc = 0;
#pragma unroll
  for (int k = 0; k < S::kPasses; ++k) {
    const int64_t r = r0 + threadIdx.x / S::kVecPerRow + k * S::kRowsPerPass;
    v[k] = make_uint4(0, 0, 0, 0);
    if (col_ok && r < rows) v[k] = ld_vec(base + (r * cols + c) * DType<D>::kSize);
  }
#pragma unroll
  for (int k = 0; k < S::kPasses; ++k) acc = vec_mag_fold<D>(acc, v[k]);
  const uint32_t mag = block_max_u32<kThreads>(vec_mag_finish<D>(acc), smem);
  const float scale = num::fp8_scale_from_amax(num::bits_float(mag_to_f32_bits<D>(mag)));
  if (threadIdx.x == 0) tile_scales[t] = scale;

  if (mag < DType<D>::kInf && fast_div_ok(scale)) {  // uniform over the CTA
    const float y = __frcp_rn(scale);
#pragma unroll
    for (int k = 0; k < S::kPasses; ++k) {
      const int64_t r = r0 + threadIdx.x / S::kVecPerRow + k * S::kRowsPerPass;
      uint32_t o[S::kPer / 4];
      fp8_vec_fast<D>(v[k], scale, y, o);  // no NaN: |quotient| <= 448 (1 + 2^-23)
      if (col_ok && r < rows) store_fp8_vec<D>(out + r * cols + c, o);
    }
  } else {
#pragma unroll 1
    for (int k = 0; k < S::kPasses; ++k) {
      const int64_t r = r0 + threadIdx.x / S::kVecPerRow + k * S::kRowsPerPass;
      if (col_ok && r < rows) fp8_elems_exact<D>(w, r * cols + c, S::kPer, scale, out);
    }
  }
}

// Element-wise fallback (any alignment or width): two passes over the tile, the second one
// mostly from cache.
template <mq_dtype D>
__global__ void __launch_bounds__(kThreads)
    quantize_fp8_block_scalar_kernel(const void* __restrict__ w, int64_t rows, int64_t cols,
                                     int64_t tile_cols, uint8_t* __restrict__ out,
                                     float* __restrict__ tile_scales) {
  __shared__ uint32_t smem[kThreads / 32];
  constexpr int kTile = num::kFp8Tile;
  const int64_t t = blockIdx.x;
  const int64_t r0 = (t / tile_cols) * kTile, c0 = (t % tile_cols) * kTile;
  const int th = static_cast<int>(min(static_cast<int64_t>(kTile), rows - r0));
  const int tw = static_cast<int>(min(static_cast<int64_t>(kTile), cols - c0));
  uint32_t mag = 0;
  for (int i = threadIdx.x; i < th * tw; i += kThreads) {
    const int64_t idx = (r0 + i / tw) * cols + c0 + i % tw;
    mag = max(mag, load_elem_bits<D>(w, idx) & DType<D>::kMagMask);
  }
  mag = block_max_u32<kThreads>(mag, smem);
  const float scale = num::fp8_scale_from_amax(num::bits_float(mag_to_f32_bits<D>(mag)));
  if (threadIdx.x == 0) tile_scales[t] = scale;
  for (int i = threadIdx.x; i < th * tw; i += kThreads) {
    const int64_t idx = (r0 + i / tw) * cols + c0 + i % tw;
    out[idx] = num::float_to_e4m3(DType<D>::to_float(load_elem_bits<D>(w, idx)) / scale);
  }
}

// ---- int4 (GPTQ v1) -------------------------------------------------------------------------

// One CTA per (group g of 128 columns, tile of 128 rows). qweight[g*16 + j, o] runs along the
// rows o, so the packed words go through shared memory and leave as 128 consecutive int32 per
// word row (coalesced stores). A scale that overflows float16 is reported by atomicMin of
// row * groups + g into `first_overflow` (all ones when none) and a 1 written to the pinned host
// word `host_overflow` (zeroed by the host before the launch), so the host needs no copy.
constexpr int kInt4Rows = 128;                   // rows per CTA
constexpr int kInt4Words = num::kInt4Group / 8;  // 16 words per row and group
constexpr uint32_t kInt4MagicBias = kE2m1MagicBits * kNibbleOnes;

__device__ __forceinline__ void int4_report_overflow(unsigned long long* first_overflow,
                                                     unsigned int* host_overflow,
                                                     unsigned long long unit) {
  atomicMin(first_overflow, unit);
  *reinterpret_cast<volatile unsigned int*>(host_overflow) = 1u;
}

// Writes the CTA's scales, qweight word rows, qzeros and (first row tile) g_idx from shared memory.
template <int kInt4Rows>
__device__ __forceinline__ void int4_store_tile(
    const uint32_t* s_words, int pitch, const uint16_t* s_scales, int64_t rows, int64_t o0,
    int64_t g, int64_t c0, int words, int32_t* __restrict__ qweight, uint16_t* __restrict__ scales,
    int32_t* __restrict__ qzeros, int32_t* __restrict__ g_idx) {
  const int lo = threadIdx.x % kInt4Rows;
  const int64_t o = o0 + lo;
  if (o < rows) {
    for (int jj = threadIdx.x / kInt4Rows; jj < words; jj += kThreads / kInt4Rows) {
      __stcs(qweight + (g * kInt4Words + jj) * rows + o,
             static_cast<int32_t>(s_words[jj * pitch + lo]));
    }
    if (threadIdx.x < kInt4Rows) scales[g * rows + o] = s_scales[lo];
  }
  const int64_t zero_words = min(static_cast<int64_t>(kInt4Rows), rows - o0) / 8;
  if (threadIdx.x < zero_words) {
    qzeros[g * (rows / 8) + o0 / 8 + threadIdx.x] = 0x77777777;
  }
  if (o0 == 0 && threadIdx.x < words * 8) {
    g_idx[c0 + threadIdx.x] = static_cast<int32_t>(g);
  }
}

// Fast kernel, 16-bit input, w 16-byte aligned. 8 lanes per row: lane j holds words j and j + 8
// of the row's group (two 16-byte loads; a warp covers 4 rows x 256 contiguous bytes per pair of
// loads), 32 rows per pass, 4 passes, all 8 loads in flight before the first use. The group amax
// is an 8-lane shuffle max. Quotients w / stored_scale are at most 7 (1 + 2^-11) / (1 - 2^-11)
// in magnitude for a normal float16 scale (and below 15 for a subnormal one), so fast_div is
// exact wherever rint decides; a zero (underflowed) or infinite (overflowed) stored scale, or a
// NaN amax, takes the exact numerics.h path for that row and group.
constexpr int kInt4Lanes = 8;
constexpr int kInt4RowsPerPass = kThreads / kInt4Lanes;  // 32

template <mq_dtype D, int kInt4Rows, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    quantize_int4_fast_kernel(const void* __restrict__ w, int64_t rows, int64_t cols,
                              int64_t groups, int32_t* __restrict__ qweight,
                              uint16_t* __restrict__ scales, int32_t* __restrict__ qzeros,
                              int32_t* __restrict__ g_idx,
                              unsigned long long* __restrict__ first_overflow,
                              unsigned int* __restrict__ host_overflow) {
  static_assert(kVecElems<D> == 8, "16-bit input");
  constexpr int kInt4Passes = kInt4Rows / kInt4RowsPerPass;
  constexpr int kInt4FastPitch = kInt4Rows + 4;  // 4 mod 32: a warp's 4 rows x 8 words, 32 banks
  __shared__ uint32_t s_words[kInt4Words * kInt4FastPitch];
  __shared__ uint16_t s_scales[kInt4Rows];
  const int64_t g = blockIdx.x % groups;
  const int64_t o0 = (blockIdx.x / groups) * kInt4Rows;
  const int64_t c0 = g * num::kInt4Group;
  const int words = static_cast<int>(min(static_cast<int64_t>(num::kInt4Group), cols - c0) / 8);
  const int j = threadIdx.x % kInt4Lanes;
  const int lr = threadIdx.x / kInt4Lanes;
  const uint4* src = static_cast<const uint4*>(w);  // vector i = elements [8i, 8i + 8)

  uint4 v[kInt4Passes][2];
#pragma unroll
  for (int p = 0; p < kInt4Passes; ++p) {
    const int64_t o = o0 + lr + p * kInt4RowsPerPass;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int jw = j + h * kInt4Lanes;
      v[p][h] = (o < rows && jw < words) ? ld_vec(src + (o * cols + c0) / 8 + jw)
                                         : make_uint4(0, 0, 0, 0);
    }
  }

  uint32_t bad = 0;
#pragma unroll
  for (int p = 0; p < kInt4Passes; ++p) {
    const int lo = lr + p * kInt4RowsPerPass;
    const int64_t o = o0 + lo;
    float x[2][8];
    unpack_vec<D>(v[p][0], x[0]);
    unpack_vec<D>(v[p][1], x[1]);
    float m = fabsf(x[0][0]);
#pragma unroll
    for (int k = 1; k < 16; ++k) m = fmax_nan(m, fabsf(x[k / 8][k % 8]));
#pragma unroll
    for (int off = kInt4Lanes / 2; off > 0; off /= 2) {
      m = fmax_nan(m, __shfl_xor_sync(0xffffffffu, m, off));
    }
    bool overflow = false;
    const uint16_t sbits = float_to_half_hw(m == 0.0f ? 1.0f : m / 7.0f, &overflow);
    const float stored = __half2float(__ushort_as_half(sbits));
    const float ys = __frcp_rn(stored);
    if (j == 0) {
      s_scales[lo] = sbits;
      if (overflow && o < rows) {
        int4_report_overflow(first_overflow, host_overflow,
                             static_cast<unsigned long long>(o * groups + g));
      }
    }
    const bool ok = fast_div_ok(stored) && m == m;  // a NaN amax converts to an overflow anyway
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t acc = 0;
#pragma unroll
      for (int k = 0; k < 8; ++k) acc += int4_code_magic(fast_div(x[h][k], stored, ys)) << (4 * k);
      const int jw = j + h * kInt4Lanes;
      if (jw < words) {
        if (ok) {
          s_words[jw * kInt4FastPitch + lo] = acc - kInt4MagicBias;
        } else {
          bad |= 1u << (2 * p + h);
        }
      }
    }
  }
  __syncwarp();    // s_scales of this warp's rows, read below
  if (bad != 0) {  // exact path: stored scale 0 or inf, or a NaN in the group
#pragma unroll 1
    for (int i = 0; i < 2 * kInt4Passes; ++i) {
      if (((bad >> i) & 1u) == 0) continue;
      const int lo = lr + (i >> 1) * kInt4RowsPerPass;
      const int jw = j + (i & 1) * kInt4Lanes;
      const float stored = __half2float(__ushort_as_half(s_scales[lo]));
      const int64_t e0 = (o0 + lo) * cols + c0 + 8 * jw;
      uint32_t word = 0;
#pragma unroll 1
      for (int k = 0; k < 8; ++k) word |= num::int4_code(elem_at<D>(w, e0 + k), stored) << (4 * k);
      s_words[jw * kInt4FastPitch + lo] = word;
    }
  }
  __syncthreads();
  int4_store_tile<kInt4Rows>(s_words, kInt4FastPitch, s_scales, rows, o0, g, c0, words, qweight,
                             scales, qzeros, g_idx);
}

// Generic kernel (f32 input or a misaligned matrix): a half-warp covers one row of the group,
// lane j holding its 8-element word j; every rounding through numerics.h.
constexpr int kInt4RowsPerPassGeneric = kThreads / kInt4Words;  // 16
constexpr int kInt4Pitch = kInt4Rows + 2;  // pitch 2 mod 32: conflict-free word stores

template <mq_dtype D, bool kVec>
__global__ void __launch_bounds__(kThreads)
    quantize_int4_kernel(const void* __restrict__ w, int64_t rows, int64_t cols, int64_t groups,
                         int32_t* __restrict__ qweight, uint16_t* __restrict__ scales,
                         int32_t* __restrict__ qzeros, int32_t* __restrict__ g_idx,
                         unsigned long long* __restrict__ first_overflow,
                         unsigned int* __restrict__ host_overflow) {
  constexpr int kLoads = 8 / kVecElems<D>;  // 16-byte loads per 8-element word
  __shared__ uint32_t s_words[kInt4Words * kInt4Pitch];
  __shared__ uint16_t s_scales[kInt4Rows];
  const int64_t g = blockIdx.x % groups;
  const int64_t o0 = (blockIdx.x / groups) * kInt4Rows;
  const int64_t c0 = g * num::kInt4Group;
  const int words = static_cast<int>(min(static_cast<int64_t>(num::kInt4Group), cols - c0) / 8);
  const int j = threadIdx.x % kInt4Words;
  const int lr = threadIdx.x / kInt4Words;
  const bool word_ok = j < words;
  const unsigned char* base = static_cast<const unsigned char*>(w);

  uint4 v[kInt4Rows / kInt4RowsPerPassGeneric][kLoads];
#pragma unroll
  for (int p = 0; p < kInt4Rows / kInt4RowsPerPassGeneric; ++p) {
    const int64_t o = o0 + lr + p * kInt4RowsPerPassGeneric;
    const bool ok = word_ok && o < rows;
    const int64_t e0 = o * cols + c0 + 8 * j;
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      v[p][l] = make_uint4(0, 0, 0, 0);
      if (ok) {
        if (kVec) {
          v[p][l] = ld_vec(base + e0 * DType<D>::kSize + l * kVecBytes);
        } else {
          uint32_t b[kVecElems<D>];
#pragma unroll
          for (int e = 0; e < kVecElems<D>; ++e) {
            b[e] = load_elem_bits<D>(w, e0 + l * kVecElems<D> + e);
          }
          if constexpr (DType<D>::kSize == 4) {
            v[p][l] = make_uint4(b[0], b[1], b[2], b[3]);
          } else {
            v[p][l] = make_uint4(b[0] | (b[1] << 16), b[2] | (b[3] << 16), b[4] | (b[5] << 16),
                                 b[6] | (b[7] << 16));
          }
        }
      }
    }
  }

#pragma unroll
  for (int p = 0; p < kInt4Rows / kInt4RowsPerPassGeneric; ++p) {
    const int lo = lr + p * kInt4RowsPerPassGeneric;
    const int64_t o = o0 + lo;
    uint32_t acc = 0;
#pragma unroll
    for (int l = 0; l < kLoads; ++l) acc = vec_mag_fold<D>(acc, v[p][l]);
    uint32_t mag = vec_mag_finish<D>(acc);
#pragma unroll
    for (int off = kInt4Words / 2; off > 0; off /= 2) {
      mag = max(mag, __shfl_xor_sync(0xffffffffu, mag, off));
    }
    const float amax = num::bits_float(mag_to_f32_bits<D>(mag));
    bool overflow = false;
    const uint16_t sbits = num::float_to_half(amax == 0.0f ? 1.0f : amax / 7.0f, &overflow);
    const float stored = num::half_to_float(sbits);
    if (j == 0) {
      s_scales[lo] = sbits;
      if (overflow && o < rows) {
        int4_report_overflow(first_overflow, host_overflow,
                             static_cast<unsigned long long>(o * groups + g));
      }
    }
    uint32_t word = 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const float x = vec_elem<D>(v[p][k / kVecElems<D>], k % kVecElems<D>);
      word |= num::int4_code(x, stored) << (4 * k);
    }
    s_words[j * kInt4Pitch + lo] = word;
  }
  __syncthreads();
  int4_store_tile<kInt4Rows>(s_words, kInt4Pitch, s_scales, rows, o0, g, c0, words, qweight, scales,
                             qzeros, g_idx);
}
std::string float_text(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

// Host-side amax of one group, read back only to word the overflow error like the CPU path.
template <mq_dtype D>
mq_status group_amax_on_host(const char* fn, const void* w, int64_t offset, int64_t n,
                             float* amax) {
  std::vector<typename DType<D>::Bits> h(static_cast<size_t>(n));
  MQ_CUDA_CHECK(fn, cudaMemcpy(h.data(), static_cast<const typename DType<D>::Bits*>(w) + offset,
                               h.size() * sizeof(h[0]), cudaMemcpyDeviceToHost));
  float m = 0.0f;
  for (const auto bits : h) {
    float x;
    if constexpr (D == MQ_DTYPE_BF16) {
      x = num::bf16_to_float(bits);
    } else if constexpr (D == MQ_DTYPE_F16) {
      x = num::half_to_float(bits);
    } else {
      x = num::bits_float(bits);
    }
    const float a = num::abs_f(x);
    m = a > m ? a : m;
  }
  *amax = m;
  return MQ_OK;
}

}  // namespace
}  // namespace cuda
}  // namespace kernels
}  // namespace moequant

using namespace moequant::kernels::cuda;
using moequant::kernels::check_quantize_fp8_args;
using moequant::kernels::check_quantize_fp8_block_args;
using moequant::kernels::check_quantize_int4_args;
using moequant::kernels::check_quantize_nvfp4_args;
namespace num = moequant::num;

extern "C" mq_status mq_cuda_quantize_fp8(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                                          const float* scales, int32_t per_row, uint8_t* out,
                                          mq_stream_t stream) {
  const char* fn = "mq_cuda_quantize_fp8";
  MQ_KRETURN_IF_ERROR(check_quantize_fp8_args(fn, w, scales, out, rows, cols, per_row));
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  return dispatch_dtype(fn, dtype, [&](auto tag) -> mq_status {
    constexpr mq_dtype D = decltype(tag)::value;
    constexpr int kPer = kVecElems<D>;
    const int64_t n = rows * cols;
    const int64_t nvec = n / kPer;
    // Vector path: 16-byte vectors in, kPer-byte words out; per row, whole vectors per row.
    const bool vec = aligned_to(w, 16) && aligned_to(out, kPer) &&
                     (!per_row || (cols % kPer == 0 && nvec < (int64_t{1} << 31)));
    if (vec) {
      auto kernel = per_row ? quantize_fp8_vec_kernel<D, true> : quantize_fp8_vec_kernel<D, false>;
      const DivU32 vpr = per_row ? DivU32::make(static_cast<uint32_t>(cols / kPer)) : DivU32{};
      int blocks = 0;
      MQ_CUDA_RETURN_IF_ERROR(persistent_grid(
          fn, reinterpret_cast<const void*>(kernel), kThreads, 0,
          (nvec + int64_t{kFp8Unroll} * kThreads - 1) / (int64_t{kFp8Unroll} * kThreads), &blocks));
      kernel<<<blocks, kThreads, 0, s>>>(w, n, nvec, vpr, scales, out);
    } else {
      auto kernel =
          per_row ? quantize_fp8_scalar_kernel<D, true> : quantize_fp8_scalar_kernel<D, false>;
      int blocks = 0;
      MQ_CUDA_RETURN_IF_ERROR(persistent_grid(fn, reinterpret_cast<const void*>(kernel), kThreads,
                                              0, ((n + 15) / 16 + kThreads - 1) / kThreads,
                                              &blocks));
      kernel<<<blocks, kThreads, 0, s>>>(w, n, cols, scales, out);
    }
    MQ_CUDA_CHECK_LAUNCH(fn, "quantize_fp8_kernel");
    return MQ_OK;
  });
}

extern "C" mq_status mq_cuda_quantize_nvfp4(const void* w, mq_dtype dtype, int64_t rows,
                                            int64_t cols, float scale2, uint8_t* packed,
                                            uint8_t* block_scales, mq_stream_t stream) {
  const char* fn = "mq_cuda_quantize_nvfp4";
  MQ_KRETURN_IF_ERROR(check_quantize_nvfp4_args(fn, w, packed, block_scales, rows, cols));
  MQ_KCHECK(num::is_finite_f(scale2) && scale2 > 0.0f,
            std::string(fn) + ": scale2 must be finite and positive, got " + float_text(scale2));
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  return dispatch_dtype(fn, dtype, [&](auto tag) -> mq_status {
    constexpr mq_dtype D = decltype(tag)::value;
    const int64_t num_blocks = rows * cols / num::kNvfp4Block;
    int blocks = 0;
    if constexpr (D != MQ_DTYPE_F32) {
      if (aligned_to(w, 16) && aligned_to(packed, 4)) {
        auto kernel = quantize_nvfp4_pair_kernel<D>;
        const int64_t nvec = 2 * num_blocks;
        const int64_t warp_iters = ((nvec + 63) / 64 + kNvfp4Unroll - 1) / kNvfp4Unroll;
        MQ_CUDA_RETURN_IF_ERROR(
            persistent_grid(fn, reinterpret_cast<const void*>(kernel), kThreads, 0,
                            (warp_iters + kThreads / 32 - 1) / (kThreads / 32), &blocks));
        kernel<<<blocks, kThreads, 0, s>>>(w, nvec, scale2, packed, block_scales);
        MQ_CUDA_CHECK_LAUNCH(fn, "quantize_nvfp4_pair_kernel");
        return MQ_OK;
      }
    }
    const bool vec = aligned_to(w, 16) && aligned_to(packed, 8);
    auto kernel = vec ? quantize_nvfp4_kernel<D, true> : quantize_nvfp4_kernel<D, false>;
    MQ_CUDA_RETURN_IF_ERROR(persistent_grid(fn, reinterpret_cast<const void*>(kernel), kThreads, 0,
                                            ((num_blocks + 1) / 2 + kThreads - 1) / kThreads,
                                            &blocks));
    kernel<<<blocks, kThreads, 0, s>>>(w, num_blocks, scale2, packed, block_scales);
    MQ_CUDA_CHECK_LAUNCH(fn, "quantize_nvfp4_kernel");
    return MQ_OK;
  });
}

extern "C" mq_status mq_cuda_quantize_fp8_block(const void* w, mq_dtype dtype, int64_t rows,
                                                int64_t cols, uint8_t* out, float* tile_scales,
                                                mq_stream_t stream) {
  const char* fn = "mq_cuda_quantize_fp8_block";
  MQ_KRETURN_IF_ERROR(check_quantize_fp8_block_args(fn, w, out, tile_scales, rows, cols));
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  return dispatch_dtype(fn, dtype, [&](auto tag) -> mq_status {
    constexpr mq_dtype D = decltype(tag)::value;
    constexpr int kPer = kVecElems<D>;
    const int64_t tile_rows = (rows + num::kFp8Tile - 1) / num::kFp8Tile;
    const int64_t tile_cols = (cols + num::kFp8Tile - 1) / num::kFp8Tile;
    const int64_t tiles = tile_rows * tile_cols;
    MQ_KCHECK(tiles <= 0x7fffffff, std::string(fn) + ": too many tiles");
    // Vector path: 16-byte aligned rows in, (16 / size)-byte aligned rows out.
    const bool vec = aligned_to(w, 16) && cols % kPer == 0 && aligned_to(out, kPer);
    if (vec) {
      quantize_fp8_block_vec_kernel<D><<<static_cast<unsigned>(tiles), kThreads, 0, s>>>(
          w, rows, cols, tile_cols, out, tile_scales);
    } else {
      quantize_fp8_block_scalar_kernel<D><<<static_cast<unsigned>(tiles), kThreads, 0, s>>>(
          w, rows, cols, tile_cols, out, tile_scales);
    }
    MQ_CUDA_CHECK_LAUNCH(fn, "quantize_fp8_block_kernel");
    return MQ_OK;
  });
}

extern "C" mq_status mq_cuda_quantize_int4(const void* w, mq_dtype dtype, int64_t rows,
                                           int64_t cols, int32_t* qweight, uint16_t* scales,
                                           int32_t* qzeros, int32_t* g_idx, mq_stream_t stream) {
  const char* fn = "mq_cuda_quantize_int4";
  MQ_KRETURN_IF_ERROR(check_quantize_int4_args(fn, w, qweight, scales, qzeros, g_idx, rows, cols));
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  return dispatch_dtype(fn, dtype, [&](auto tag) -> mq_status {
    constexpr mq_dtype D = decltype(tag)::value;
    const int64_t groups = (cols + num::kInt4Group - 1) / num::kInt4Group;
    const int64_t ctas = groups * ((rows + kInt4Rows - 1) / kInt4Rows);
    MQ_KCHECK(ctas <= 0x7fffffff, std::string(fn) + ": matrix too large");
    Scratch* scratch = nullptr;
    MQ_CUDA_RETURN_IF_ERROR(scratch_acquire(fn, 0, &scratch));
    // The kernel writes 1 into the pinned word on overflow and atomicMin's the failing
    // row * groups + g into dev_flag (all ones otherwise): no copy unless a scale overflowed.
    // Calls on this thread are synchronous, so no kernel still uses either word here.
    unsigned int* host_overflow = reinterpret_cast<unsigned int*>(scratch->host_flag);
    *reinterpret_cast<volatile unsigned int*>(host_overflow) = 0u;
    unsigned int* host_overflow_dev = reinterpret_cast<unsigned int*>(scratch->host_flag_dev);
    bool launched = false;
    if constexpr (D != MQ_DTYPE_F32) {
      if (aligned_to(w, 16)) {  // cols % 8 == 0: every 8-element word is a 16-byte vector
        // 48 registers (5 CTAs of 256 threads per SM), no spills: occupancy decides here
        // (measured on H100 at 16384^2: 0.70-0.80 of copy bandwidth at 64-85 registers, 0.90
        // at 48). bf16 fits 128 rows per CTA in 48 registers, f16 (hardware unpacking) 64.
        constexpr int kFastRows = D == MQ_DTYPE_BF16 ? 128 : 64;
        const int64_t fast_ctas = groups * ((rows + kFastRows - 1) / kFastRows);
        auto kernel = quantize_int4_fast_kernel<D, kFastRows, 5>;
        kernel<<<static_cast<unsigned>(fast_ctas), kThreads, 0, s>>>(
            w, rows, cols, groups, qweight, scales, qzeros, g_idx, scratch->dev_flag,
            host_overflow_dev);
        launched = true;
      }
    }
    if (!launched) {
      const bool vec = aligned_to(w, 16);
      auto kernel = vec ? quantize_int4_kernel<D, true> : quantize_int4_kernel<D, false>;
      kernel<<<static_cast<unsigned>(ctas), kThreads, 0, s>>>(w, rows, cols, groups, qweight,
                                                              scales, qzeros, g_idx,
                                                              scratch->dev_flag, host_overflow_dev);
    }
    MQ_CUDA_CHECK_LAUNCH(fn, "quantize_int4_kernel");
    MQ_CUDA_CHECK(fn, cudaStreamSynchronize(s));
    if (*reinterpret_cast<volatile unsigned int*>(host_overflow) == 0u) return MQ_OK;
    unsigned long long unit = ~0ull;
    MQ_CUDA_CHECK(fn, cudaMemcpy(&unit, scratch->dev_flag, sizeof(unit), cudaMemcpyDeviceToHost));
    const unsigned long long all_ones = ~0ull;
    MQ_CUDA_CHECK(
        fn, cudaMemcpy(scratch->dev_flag, &all_ones, sizeof(all_ones), cudaMemcpyHostToDevice));
    const int64_t o = static_cast<int64_t>(unit) / groups, g = static_cast<int64_t>(unit) % groups;
    const int64_t c0 = g * num::kInt4Group, c1 = std::min(c0 + num::kInt4Group, cols);
    float amax = 0.0f;
    MQ_CUDA_RETURN_IF_ERROR(group_amax_on_host<D>(fn, w, o * cols + c0, c1 - c0, &amax));
    const float scale = amax == 0.0f ? 1.0f : amax / 7.0f;
    return moequant::kernels::set_error(
        MQ_ERR_RANGE, std::string(fn) + ": the scale of row " + std::to_string(o) + ", group " +
                          std::to_string(g) + " (group amax " + float_text(amax) + " / 7 = " +
                          float_text(scale) + ") does not fit float16 (max 65504); matrix " +
                          moequant::kernels::shape_text(rows, cols));
  });
}
