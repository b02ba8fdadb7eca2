// CUDA quantizers (docs/formats.md), per-matrix entry points: fp8 per-tensor/per-row, nvfp4, fp8
// 128x128 blocks, GPTQ int4.
//
// Every output byte equals the CPU path's (numerics.h). Each format has a fast kernel for the
// common layout (16-byte aligned input; nvfp4 and int4 also 16-bit input) whose per-element work
// is a handful of instructions (quant_math.cuh: one division by a prepared reciprocal, hardware
// e4m3 and int4 codes by one rounding each; nvfp4 codes from per-scale threshold tables,
// nvfp4_table.cuh), and the exact numerics.h code for everything else: other alignments, and,
// inside the fast kernels, any scale or value outside the range where the fast path is proven
// equal (rare: a NaN/Inf input, a scale below 2^-60, ...), so the bytes never depend on which
// path ran. Loads are 16-byte vectors, one per lane and instruction with consecutive lanes on
// consecutive vectors (whole 512-byte warp accesses), several in flight per thread before the
// first use. The tile bodies of fp8_block and int4 and the whole nvfp4 kernel are shared with
// mq_cuda_quantize_batched (quantize_batched.cu), so a batch item gets these same bytes.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "cpu/arg_checks.h"
#include "cuda_utils.cuh"
#include "fp8_block_tile.cuh"
#include "int4_tile.cuh"
#include "op_args.h"
#include "quant_common.cuh"
#include "quantize_nvfp4.h"

namespace moequant {
namespace kernels {
namespace cuda {
namespace {

// ---- fp8 per-tensor / per-row ---------------------------------------------------------------
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

// ---- fp8 128x128 blocks: one CTA per tile (fp8_block_tile.cuh) -------------------------------

template <mq_dtype D>
__global__ void __launch_bounds__(kThreads, Fp8TileShape<D>::kMinBlocks)
    quantize_fp8_block_vec_kernel(const void* __restrict__ w, int64_t rows, int64_t cols,
                                  int64_t tile_cols, uint8_t* __restrict__ out,
                                  float* __restrict__ tile_scales) {
  fp8_block_tile_vec<D>(w, rows, cols, tile_cols, blockIdx.x, out, tile_scales);
}

template <mq_dtype D>
__global__ void __launch_bounds__(kThreads)
    quantize_fp8_block_scalar_kernel(const void* __restrict__ w, int64_t rows, int64_t cols,
                                     int64_t tile_cols, uint8_t* __restrict__ out,
                                     float* __restrict__ tile_scales) {
  fp8_block_tile_scalar<D>(w, rows, cols, tile_cols, blockIdx.x, out, tile_scales);
}

// ---- int4 (GPTQ v1): one CTA per (group, row tile) (int4_tile.cuh) ---------------------------

template <mq_dtype D, int kRows, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    quantize_int4_fast_kernel(const void* __restrict__ w, int64_t rows, int64_t cols,
                              int64_t groups, int32_t* __restrict__ qweight,
                              uint16_t* __restrict__ scales, int32_t* __restrict__ qzeros,
                              int32_t* __restrict__ g_idx,
                              unsigned long long* __restrict__ first_overflow,
                              unsigned int* __restrict__ host_overflow) {
  int4_fast_tile<D, kRows>(w, rows, cols, groups, blockIdx.x, true, 0, qweight, scales, qzeros,
                           g_idx, first_overflow, host_overflow);
}

template <mq_dtype D, bool kVec>
__global__ void __launch_bounds__(kThreads)
    quantize_int4_kernel(const void* __restrict__ w, int64_t rows, int64_t cols, int64_t groups,
                         int32_t* __restrict__ qweight, uint16_t* __restrict__ scales,
                         int32_t* __restrict__ qzeros, int32_t* __restrict__ g_idx,
                         unsigned long long* __restrict__ first_overflow,
                         unsigned int* __restrict__ host_overflow) {
  int4_generic_tile<D, kVec>(w, rows, cols, groups, blockIdx.x, 0, qweight, scales, qzeros, g_idx,
                             first_overflow, host_overflow);
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
  // the batched kernel with the one item in its parameter (no descriptor upload)
  BatchArgs args{};
  args.n = 1;
  args.one = QuantDesc{w,
                       packed,
                       block_scales,
                       nullptr,
                       nullptr,
                       rows,
                       cols,
                       0,
                       0,
                       scale2,
                       nvfp4_path(dtype, w, packed)};
  args.total = nvfp4_units(rows, cols);
  return launch_quantize_nvfp4(fn, dtype, args, reinterpret_cast<cudaStream_t>(stream));
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
