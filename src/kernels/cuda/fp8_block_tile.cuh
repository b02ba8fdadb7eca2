// One 128x128 tile of fp8_block: the work of one CTA, shared by the per-matrix kernels and the
// batched kernel (which finds its item first), so both write the same bytes by construction.
//
// Vector path: a row of the tile is kVecPerRow 16-byte vectors; thread t reads vector
// (t % kVecPerRow) of rows t / kVecPerRow + k * kRowsPerPass, holds the whole tile in registers
// across the amax reduction, then quantizes and stores 16 / size bytes per vector. Edge tiles
// mask rows and vectors outside the matrix (vector path needs cols % (16/size) == 0). The
// quotients are at most 448 (1 + 2^-23) in magnitude (the scale is the tile's amax / 448), so
// fast_div is exact wherever the e4m3 code depends on it; a scale outside fast_div_ok's range or
// a NaN/Inf in the tile sends the whole CTA down the exact path.
#pragma once

#include "quant_common.cuh"

namespace moequant {
namespace kernels {
namespace cuda {

template <mq_dtype D>
struct Fp8TileShape {
  static constexpr int kPer = kVecElems<D>;
  static constexpr int kVecPerRow = num::kFp8Tile / kPer;
  static constexpr int kRowsPerPass = kThreads / kVecPerRow;
  static constexpr int kPasses = num::kFp8Tile / kRowsPerPass;
  static constexpr int kMinBlocks = kPasses <= 8 ? 4 : 2;  // registers: the tile stays in them
};

// Tile t (row-major over ceil(rows/128) x tile_cols) through the vector path.
template <mq_dtype D>
__device__ __forceinline__ void fp8_block_tile_vec(const void* __restrict__ w, int64_t rows,
                                                   int64_t cols, int64_t tile_cols, int64_t t,
                                                   uint8_t* __restrict__ out,
                                                   float* __restrict__ tile_scales) {
  using S = Fp8TileShape<D>;
  __shared__ uint32_t smem[kThreads / 32];
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
__device__ __forceinline__ void fp8_block_tile_scalar(const void* __restrict__ w, int64_t rows,
                                                      int64_t cols, int64_t tile_cols, int64_t t,
                                                      uint8_t* __restrict__ out,
                                                      float* __restrict__ tile_scales) {
  __shared__ uint32_t smem[kThreads / 32];
  constexpr int kTile = num::kFp8Tile;
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

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
