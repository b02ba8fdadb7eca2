// nvfp4 for the per-matrix and the batched entry points: one persistent kernel over the units
// (runs of 32 blocks) of any number of items.
//
// Each CTA takes a contiguous share of the units and walks through the items it touches. For an
// item on the table path (16-bit input, aligned) it first builds the item's threshold table in
// shared memory (nvfp4_table.cuh: the 7 e2m1 thresholds of each of the 126 scale codes), then
// each warp takes units: lane l loads vector l of the unit's first half (A) and vector l of its
// second half (B), so lanes 2i and 2i+1 hold the halves of blocks A_i and B_i. Both lanes get
// each block's amax (one shuffle), the even lane derives block A_i's scale code and the odd one
// B_i's (one shuffle to swap them), and each lane reads the thresholds of both blocks and
// encodes its halves with packed compares: no division per element, no unpacking to float. The
// next unit's loads are issued before the current one is encoded.
//
// Fast-path condition per block (else its halves take nvfp4_half_exact, numerics.h throughout):
// no NaN/Inf among its elements and the table row of its scale marked usable. The scale code is
// the rule's: the division block_amax / (6 scale2) is fast_div, taken only where its result
// proves it exact (q in [2^-19, 2^19], quant_math.cuh), else IEEE division.
//
// Other items (f32 input, misaligned pointers): one lane per block, numerics.h throughout.
#include "quantize_nvfp4.h"

#include <algorithm>

#include "nvfp4_table.cuh"
#include "quant_common.cuh"

namespace moequant {
namespace kernels {
namespace cuda {
namespace {

constexpr int kWarps = kThreads / 32;
// CTAs per SM the registers must allow (the table path needs ~60 registers per thread).
constexpr int kNvfp4MinBlocks = 3;
// A CTA's share is at least this many units, so small items do not pay a table per few blocks.
constexpr int64_t kMinShareUnits = 2 * kWarps;

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

// Generic path: block b of an item, element by element or from 16-byte loads (vec). The block
// amax is taken as the CPU takes it (a NaN is skipped by `a > m`).
template <mq_dtype D>
__device__ __forceinline__ void nvfp4_generic_block(const void* __restrict__ w, int64_t b,
                                                    float scale2, bool vec,
                                                    uint8_t* __restrict__ packed,
                                                    uint8_t* __restrict__ block_scales) {
  constexpr int kPer = kVecElems<D>;
  constexpr int kLoads = 16 / kPer;  // 16-byte loads per block
  float x[16];
  if (vec) {
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
  if (vec) {
    st_vec8(packed + b * 8, p);
  } else {
    for (int k = 0; k < 4; ++k) packed[b * 8 + k] = static_cast<uint8_t>(p.x >> (8 * k));
    for (int k = 0; k < 4; ++k) packed[b * 8 + 4 + k] = static_cast<uint8_t>(p.y >> (8 * k));
  }
  block_scales[b] = sc;
}

// Exact path for half `v & 1` of block v / 2 (vector v of the table path): the block's amax,
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

// Per-item constants of the table path.
struct Nvfp4Item {
  const uint4* src;
  int64_t nvec;  // 16-byte vectors, 2 per block
  float scale2;
  float prod6;  // docs/formats.md: the product 6 * weight_scale_2 first
  float y6;     // __frcp_rn(prod6)
  bool prod6_ok;
};

// The rule's e4m3 scale code of a block with amax m (finite or not; a NaN gives code 127).
__device__ __forceinline__ uint32_t nvfp4_scale_code(float m, const Nvfp4Item& it) {
  float s = fast_div(m, it.prod6, it.y6);
  if (!(it.prod6_ok && s >= 0x1p-19f && s <= 0x1p19f)) s = m / it.prod6;  // rare: not proven
  if (s == 0.0f) s = 1.0f;
  if (s < num::kNvfp4MinBlockScale) s = num::kNvfp4MinBlockScale;
  if (s > num::kE4M3Max) s = num::kE4M3Max;
  return e4m3_positive_hw(s);
}

template <mq_dtype D>
__device__ __forceinline__ void nvfp4_load_unit(const Nvfp4Item& it, int64_t u, uint4 (&in)[2]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t v = u * 64 + h * 32 + lane;
    in[h] = v < it.nvec ? ld_vec(it.src + v) : make_uint4(0, 0, 0, 0);
  }
}

// Unit u of a table-path item, from its loaded vectors.
template <mq_dtype D>
__device__ __forceinline__ void nvfp4_table_unit(const Nvfp4Item& it, const QuantDesc& d, int64_t u,
                                                 const uint4 (&in)[2],
                                                 const uint32_t* __restrict__ table) {
  const int lane = threadIdx.x & 31;
  const bool odd = (lane & 1) != 0;
  uint8_t* packed = static_cast<uint8_t*>(d.out);
  uint8_t* block_scales = static_cast<uint8_t*>(d.scales);
  constexpr uint32_t kMask = PackedConst<D>::kMagMask;
  bool finite[2];
  float amax[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint4& v = in[h];
    uint32_t m = max_nan_x2<D>(max_nan_x2<D>(v.x & kMask, v.y & kMask),
                               max_nan_x2<D>(v.z & kMask, v.w & kMask));
    m = max_nan_x2<D>(m, __shfl_xor_sync(0xffffffffu, m, 1));  // the block's other half
    const uint32_t mag = max(m & 0xffffu, m >> 16);            // NaN patterns are the largest
    finite[h] = mag < DType<D>::kInf;
    amax[h] = DType<D>::to_float(mag);
  }
  // this lane's block: A for even lanes, B for odd ones; then swap the codes
  const uint32_t sc = nvfp4_scale_code(odd ? amax[1] : amax[0], it);
  const uint32_t sc_p = __shfl_xor_sync(0xffffffffu, sc, 1);
  const uint32_t code[2] = {odd ? sc_p : sc, odd ? sc : sc_p};
  uint32_t bad = 0;
  bool ok_own = false;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint4* row = reinterpret_cast<const uint4*>(table + code[h] * kNvfp4TableWords);
    const uint4 t0 = row[0], t1 = row[1];
    const uint32_t t[7] = {t0.x, t0.y, t0.z, t0.w, t1.x, t1.y, t1.z};
    const bool ok = finite[h] && t1.w != 0u;
    if (h == (odd ? 1 : 0)) ok_own = ok;
    const int64_t v = u * 64 + h * 32 + lane;
    if (v < it.nvec) {
      if (ok) {
        st_vec4(packed + v * 4, nvfp4_codes_from_table<D>(in[h], t));
      } else {
        bad |= 1u << h;
      }
    }
  }
  const int64_t vs = u * 64 + (odd ? 32 : 0) + lane;  // a vector of this lane's block
  if (ok_own && vs < it.nvec) block_scales[vs >> 1] = static_cast<uint8_t>(sc);
  if (bad != 0) {
#pragma unroll 1
    for (int h = 0; h < 2; ++h) {
      if (((bad >> h) & 1u) == 0) continue;
      nvfp4_half_exact<D>(d.w, u * 64 + h * 32 + lane, it.scale2, h == (odd ? 1 : 0), packed,
                          block_scales);
    }
  }
}

// Units [u0, u1) of table-path item d, warp w of the CTA taking u0 + w, u0 + w + kWarps, ...;
// the next unit's loads are in flight while the current one is encoded.
template <mq_dtype D>
__device__ __forceinline__ void nvfp4_table_units(const QuantDesc& d, int64_t u0, int64_t u1,
                                                  const uint32_t* table) {
  Nvfp4Item it;
  it.src = static_cast<const uint4*>(d.w);
  it.nvec = d.rows * d.cols / 8;
  it.scale2 = d.scale;
  it.prod6 = 6.0f * d.scale;
  it.y6 = __frcp_rn(it.prod6);
  it.prod6_ok = fast_div_ok(it.prod6);
  int64_t u = u0 + (threadIdx.x >> 5);
  if (u >= u1) return;
  uint4 next[2];
  nvfp4_load_unit<D>(it, u, next);
  for (; u < u1; u += kWarps) {
    const uint4 in[2] = {next[0], next[1]};
    if (u + kWarps < u1) nvfp4_load_unit<D>(it, u + kWarps, next);
    nvfp4_table_unit<D>(it, d, u, in, table);
  }
}

// Units [u0, u1) of a generic item: lane l of the warp on unit u takes block 32u + l.
template <mq_dtype D>
__device__ __forceinline__ void nvfp4_generic_units(const QuantDesc& d, int64_t u0, int64_t u1) {
  const int64_t blocks = d.rows * d.cols / num::kNvfp4Block;
  const bool vec = d.path != kPathScalar;
  for (int64_t u = u0 + (threadIdx.x >> 5); u < u1; u += kWarps) {
    const int64_t b = u * kNvfp4UnitBlocks + (threadIdx.x & 31);
    if (b < blocks) {
      nvfp4_generic_block<D>(d.w, b, d.scale, vec, static_cast<uint8_t*>(d.out),
                             static_cast<uint8_t*>(d.scales));
    }
  }
}

template <mq_dtype D>
__global__ void __launch_bounds__(kThreads, kNvfp4MinBlocks)
    quantize_nvfp4_kernel(const __grid_constant__ BatchArgs args, int64_t share) {
  __shared__ __align__(16) uint32_t table[kNvfp4TableRows * kNvfp4TableWords];
  int64_t cur = static_cast<int64_t>(blockIdx.x) * share;
  const int64_t end = min(args.total, cur + share);
  if (cur >= end) return;
  int32_t item = find_item(args, cur);
  bool table_used = false;
  while (cur < end) {  // uniform over the CTA: one item segment at a time
    const QuantDesc d = load_desc(args, item);
    const int64_t seg_end = min(end, d.first + nvfp4_units(d.rows, d.cols));
    if constexpr (D != MQ_DTYPE_F32) {
      if (d.path == kPathFast) {
        if (table_used) __syncthreads();  // the previous segment is done reading it
        nvfp4_build_table<D, kThreads>(d.scale, table);
        __syncthreads();
        table_used = true;
        nvfp4_table_units<D>(d, cur - d.first, seg_end - d.first, table);
      } else {
        nvfp4_generic_units<D>(d, cur - d.first, seg_end - d.first);
      }
    } else {
      nvfp4_generic_units<D>(d, cur - d.first, seg_end - d.first);
    }
    cur = seg_end;
    ++item;
  }
}

template <mq_dtype D>
mq_status launch(const char* fn, const BatchArgs& args, cudaStream_t stream) {
  auto kernel = quantize_nvfp4_kernel<D>;
  int blocks = 0;
  MQ_CUDA_RETURN_IF_ERROR(persistent_grid(fn, reinterpret_cast<const void*>(kernel), kThreads, 0,
                                          (args.total + kMinShareUnits - 1) / kMinShareUnits,
                                          &blocks));
  // equal shares, a whole number of units per warp
  int64_t share = (args.total + blocks - 1) / blocks;
  share = (share + kWarps - 1) / kWarps * kWarps;
  blocks = static_cast<int>((args.total + share - 1) / share);
  kernel<<<blocks, kThreads, 0, stream>>>(args, share);
  MQ_CUDA_CHECK_LAUNCH(fn, "quantize_nvfp4_kernel");
  return MQ_OK;
}

}  // namespace

mq_status launch_quantize_nvfp4(const char* fn, const mq_dtype& dtype, const BatchArgs& args,
                                cudaStream_t stream) {
  return dispatch_dtype(fn, dtype, [&](auto tag) -> mq_status {
    return launch<decltype(tag)::value>(fn, args, stream);
  });
}

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
