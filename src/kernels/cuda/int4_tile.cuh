// GPTQ v1 int4: the work of one CTA (a group of 128 columns by a tile of rows), shared by the
// per-matrix kernels and the batched kernel, and the host-side wording of a scale overflow.
#pragma once

#include <vector>

#include "quant_common.cuh"

namespace moequant {
namespace kernels {
namespace cuda {

// The 8 elements [e0, e0 + 8) of a 16-bit matrix as one vector, read element by element (a
// matrix that is not 16-byte aligned).
template <mq_dtype D>
__device__ __forceinline__ uint4 load_vec_elems(const void* w, int64_t e0) {
  static_assert(kVecElems<D> == 8, "16-bit input");
  uint32_t b[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) b[e] = load_elem_bits<D>(w, e0 + e);
  return make_uint4(b[0] | (b[1] << 16), b[2] | (b[3] << 16), b[4] | (b[5] << 16),
                    b[6] | (b[7] << 16));
}

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

// Fast tile, 16-bit input (16-byte loads when `aligned`, else element loads into the same
// vectors). 8 lanes per row: lane j holds words j and j + 8
// of the row's group (two 16-byte loads; a warp covers 4 rows x 256 contiguous bytes per pair of
// loads), 32 rows per pass, 4 passes, all 8 loads in flight before the first use. The group amax
// is an 8-lane shuffle max. Quotients w / stored_scale are at most 7 (1 + 2^-11) / (1 - 2^-11)
// in magnitude for a normal float16 scale (and below 15 for a subnormal one), so fast_div is
// exact wherever rint decides; a zero (underflowed) or infinite (overflowed) stored scale, or a
// NaN amax, takes the exact numerics.h path for that row and group.
constexpr int kInt4Lanes = 8;
constexpr int kInt4RowsPerPass = kThreads / kInt4Lanes;  // 32

template <mq_dtype D, int kInt4Rows>
__device__ __forceinline__ void int4_fast_tile(
    const void* __restrict__ w, int64_t rows, int64_t cols, int64_t groups, int64_t bid,
    bool aligned, int64_t key_base, int32_t* __restrict__ qweight, uint16_t* __restrict__ scales,
    int32_t* __restrict__ qzeros, int32_t* __restrict__ g_idx,
    unsigned long long* __restrict__ first_overflow, unsigned int* __restrict__ host_overflow) {
  static_assert(kVecElems<D> == 8, "16-bit input");
  constexpr int kInt4Passes = kInt4Rows / kInt4RowsPerPass;
  constexpr int kInt4FastPitch = kInt4Rows + 4;  // 4 mod 32: a warp's 4 rows x 8 words, 32 banks
  __shared__ uint32_t s_words[kInt4Words * kInt4FastPitch];
  __shared__ uint16_t s_scales[kInt4Rows];
  const int64_t g = bid % groups;
  const int64_t o0 = (bid / groups) * kInt4Rows;
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
      v[p][h] = make_uint4(0, 0, 0, 0);
      if (o < rows && jw < words) {
        v[p][h] = aligned ? ld_vec(src + (o * cols + c0) / 8 + jw)
                          : load_vec_elems<D>(w, o * cols + c0 + 8 * jw);
      }
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
                             static_cast<unsigned long long>(key_base + o * groups + g));
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

// Generic tile (f32 input or a misaligned matrix): a half-warp covers one row of the group,
// lane j holding its 8-element word j; every rounding through numerics.h.
constexpr int kInt4RowsPerPassGeneric = kThreads / kInt4Words;  // 16
constexpr int kInt4Pitch = kInt4Rows + 2;  // pitch 2 mod 32: conflict-free word stores

template <mq_dtype D, bool kVec>
__device__ __forceinline__ void int4_generic_tile(
    const void* __restrict__ w, int64_t rows, int64_t cols, int64_t groups, int64_t bid,
    int64_t key_base, int32_t* __restrict__ qweight, uint16_t* __restrict__ scales,
    int32_t* __restrict__ qzeros, int32_t* __restrict__ g_idx,
    unsigned long long* __restrict__ first_overflow, unsigned int* __restrict__ host_overflow) {
  constexpr int kLoads = 8 / kVecElems<D>;  // 16-byte loads per 8-element word
  __shared__ uint32_t s_words[kInt4Words * kInt4Pitch];
  __shared__ uint16_t s_scales[kInt4Rows];
  const int64_t g = bid % groups;
  const int64_t o0 = (bid / groups) * kInt4Rows;
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
                             static_cast<unsigned long long>(key_base + o * groups + g));
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

// Host-side amax of one group, read back only to word the overflow error like the CPU path.
template <mq_dtype D>
inline mq_status group_amax_on_host(const char* fn, const void* w, int64_t offset, int64_t n,
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
}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
