// CUDA dequantizers: the bytes of docs/formats.md back to float32 [rows, cols], the same products
// as the CPU path (code value times scale; nvfp4's two-level scale multiplied out first).
// Outputs are written as 16-byte vectors where the pointers allow, element-wise otherwise.
#include <cuda_runtime.h>

#include <string>

#include "cpu/arg_checks.h"
#include "cuda_utils.cuh"
#include "op_args.h"

namespace moequant {
namespace kernels {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ void st_float4(float* p, float a, float b, float c, float d) {
  st_vec(p, make_uint4(num::float_bits(a), num::float_bits(b), num::float_bits(c),
                       num::float_bits(d)));
}

// fp8 (per-tensor or per-row): groups of 16 codes (one 16-byte load, four 16-byte stores).
template <bool kPerRow, bool kVec>
__global__ void __launch_bounds__(kThreads)
    dequantize_fp8_kernel(const uint8_t* __restrict__ q, int64_t n, int64_t cols,
                          const float* __restrict__ scales, float* __restrict__ out) {
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
    if (kVec && i0 + 16 <= n) {
      const uint4 v = ld_vec(q + i0);
      float f[16];
#pragma unroll
      for (int k = 0; k < 16; ++k) {
        if (kPerRow && i0 + k >= next_row) {
          ++row;
          next_row += cols;
          scale = scales[row];
        }
        const uint8_t c = static_cast<uint8_t>(vec_word(v, k / 4) >> (8 * (k % 4)));
        f[k] = num::e4m3_to_float(c) * scale;
      }
#pragma unroll
      for (int k = 0; k < 16; k += 4) st_float4(out + i0 + k, f[k], f[k + 1], f[k + 2], f[k + 3]);
    } else {
      const int64_t end = min(n, i0 + 16);
      for (int64_t i = i0; i < end; ++i) {
        if (kPerRow && i >= next_row) {
          ++row;
          next_row += cols;
          scale = scales[row];
        }
        out[i] = num::e4m3_to_float(q[i]) * scale;
      }
    }
  }
}

// nvfp4: one thread per 16-element block (8 packed bytes, one scale byte, 64 output bytes).
template <bool kVec>
__global__ void __launch_bounds__(kThreads)
    dequantize_nvfp4_kernel(const uint8_t* __restrict__ packed,
                            const uint8_t* __restrict__ block_scales, float scale2,
                            int64_t num_blocks, float* __restrict__ out) {
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; b < num_blocks;
       b += static_cast<int64_t>(gridDim.x) * kThreads) {
    const float scale = num::e4m3_to_float(block_scales[b]) * scale2;
    uint32_t p[2];
    if (kVec) {
      const uint2 v = *reinterpret_cast<const uint2*>(packed + b * 8);
      p[0] = v.x;
      p[1] = v.y;
    } else {
      p[0] = p[1] = 0;
      for (int k = 0; k < 8; ++k)
        p[k / 4] |= static_cast<uint32_t>(packed[b * 8 + k]) << (8 * (k % 4));
    }
    float f[16];
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      f[k] = num::e2m1_to_float(static_cast<uint8_t>((p[k / 8] >> (4 * (k % 8))) & 0xfu)) * scale;
    }
    if (kVec) {
#pragma unroll
      for (int k = 0; k < 16; k += 4) {
        st_float4(out + b * 16 + k, f[k], f[k + 1], f[k + 2], f[k + 3]);
      }
    } else {
#pragma unroll
      for (int k = 0; k < 16; ++k) out[b * 16 + k] = f[k];
    }
  }
}

// Sixteen dequantized values stored at p: as floats (64 bytes), or rounded to bf16 (32 bytes).
__device__ __forceinline__ void st_16(float* p, const float* f) {
#pragma unroll
  for (int k = 0; k < 16; k += 4) st_float4(p + k, f[k], f[k + 1], f[k + 2], f[k + 3]);
}
__device__ __forceinline__ void st_16(uint16_t* p, const float* f) {
  uint32_t w[8];
#pragma unroll
  for (int k = 0; k < 8; ++k)
    w[k] = num::float_to_bf16(f[2 * k]) |
           (static_cast<uint32_t>(num::float_to_bf16(f[2 * k + 1])) << 16);
  st_vec(p, make_uint4(w[0], w[1], w[2], w[3]));
  st_vec(p + 8, make_uint4(w[4], w[5], w[6], w[7]));
}
__device__ __forceinline__ void st_1(float* p, float f) {
  *p = f;
}
__device__ __forceinline__ void st_1(uint16_t* p, float f) {
  *p = num::float_to_bf16(f);
}

// fp8 128x128 blocks: groups of 16 codes of one row (vector path: cols % 16 == 0, so a group
// never spans tiles); element-wise otherwise. Out: float, or bf16 bits (an FP8 block source).
template <bool kVec, typename Out>
__global__ void __launch_bounds__(kThreads)
    dequantize_fp8_block_kernel(const uint8_t* __restrict__ q,
                                const float* __restrict__ tile_scales, int64_t rows, int64_t cols,
                                Out* __restrict__ out) {
  constexpr int kTile = num::kFp8Tile;
  const int64_t tile_cols = (cols + kTile - 1) / kTile;
  const int64_t n = rows * cols;
  const int64_t groups = (n + 15) / 16;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; g < groups;
       g += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t i0 = g * 16;
    if (kVec) {
      const int64_t r = i0 / cols, c = i0 - r * cols;
      const float scale = tile_scales[(r / kTile) * tile_cols + c / kTile];
      const uint4 v = ld_vec(q + i0);
      float f[16];
#pragma unroll
      for (int k = 0; k < 16; ++k) {
        f[k] =
            num::e4m3_to_float(static_cast<uint8_t>(vec_word(v, k / 4) >> (8 * (k % 4)))) * scale;
      }
      st_16(out + i0, f);
    } else {
      const int64_t end = min(n, i0 + 16);
      for (int64_t i = i0; i < end; ++i) {
        const int64_t r = i / cols, c = i - r * cols;
        st_1(out + i, num::e4m3_to_float(q[i]) * tile_scales[(r / kTile) * tile_cols + c / kTile]);
      }
    }
  }
}

// int4: thread per qweight word (r8, o), o fastest, so qweight and scales reads coalesce; each
// thread writes its 8 floats (32 bytes, a whole sector) of row o.
template <bool kVec>
__global__ void __launch_bounds__(kThreads)
    dequantize_int4_kernel(const int32_t* __restrict__ qweight, const uint16_t* __restrict__ scales,
                           int64_t rows, int64_t cols, float* __restrict__ out) {
  const int64_t words = (cols / 8) * rows;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < words;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t r8 = i / rows, o = i - r8 * rows;
    const uint32_t word = static_cast<uint32_t>(__ldcs(qweight + i));
    const float scale = num::half_to_float(scales[(r8 * 8 / num::kInt4Group) * rows + o]);
    float f[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      f[k] = static_cast<float>(static_cast<int32_t>((word >> (4 * k)) & 0xfu) - 8) * scale;
    }
    float* dst = out + o * cols + r8 * 8;
    if (kVec) {
      st_float4(dst, f[0], f[1], f[2], f[3]);
      st_float4(dst + 4, f[4], f[5], f[6], f[7]);
    } else {
#pragma unroll
      for (int k = 0; k < 8; ++k) dst[k] = f[k];
    }
  }
}

// MXFP4 (GPT-OSS release) to bf16 bits: one packed byte (two elements) per thread; byte j holds
// elements 2j (low nibble) and 2j + 1, whose block scale is scales[2j / 32].
__global__ void __launch_bounds__(kThreads)
    dequantize_mxfp4_kernel(const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                            int64_t bytes, uint16_t* __restrict__ out) {
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; j < bytes;
       j += static_cast<int64_t>(gridDim.x) * kThreads) {
    const uint8_t b = blocks[j], s = scales[j / (num::kMxfp4Block / 2)];
    out[2 * j] = num::mxfp4_to_bf16(static_cast<uint8_t>(b & 0x0fu), s);
    out[2 * j + 1] = num::mxfp4_to_bf16(static_cast<uint8_t>(b >> 4), s);
  }
}

// Grid-stride launch over `work` units of one thread each.
template <typename Kernel, typename... Args>
mq_status launch(Kernel kernel, const char* fn, int64_t work, cudaStream_t s, Args... args) {
  int blocks = 0;
  MQ_CUDA_RETURN_IF_ERROR(persistent_grid(fn, reinterpret_cast<const void*>(kernel), kThreads, 0,
                                          (work + kThreads - 1) / kThreads, &blocks));
  kernel<<<blocks, kThreads, 0, s>>>(args...);
  MQ_CUDA_CHECK_LAUNCH(fn, "dequantize kernel");
  return MQ_OK;
}

}  // namespace
}  // namespace cuda
}  // namespace kernels
}  // namespace moequant

using namespace moequant::kernels::cuda;
using moequant::kernels::check_dequantize_fp8_args;
using moequant::kernels::check_dequantize_fp8_block_args;
using moequant::kernels::check_dequantize_int4_args;
using moequant::kernels::check_dequantize_mxfp4_args;
using moequant::kernels::check_dequantize_nvfp4_args;
namespace num = moequant::num;

namespace {

template <typename Out>
mq_status fp8_block_dequantize(const char* fn, const uint8_t* q, const float* tile_scales,
                               int64_t rows, int64_t cols, Out* out, mq_stream_t stream) {
  MQ_KRETURN_IF_ERROR(check_dequantize_fp8_block_args(fn, q, tile_scales, out, rows, cols));
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  const int64_t work = (rows * cols + 15) / 16;
  const bool vec = cols % 16 == 0 && aligned_to(q, 16) && aligned_to(out, 16);
  return vec ? launch(dequantize_fp8_block_kernel<true, Out>, fn, work, s, q, tile_scales, rows,
                      cols, out)
             : launch(dequantize_fp8_block_kernel<false, Out>, fn, work, s, q, tile_scales, rows,
                      cols, out);
}

}  // namespace

extern "C" mq_status mq_cuda_dequantize_fp8(const uint8_t* q, int64_t rows, int64_t cols,
                                            const float* scales, int32_t per_row, float* out,
                                            mq_stream_t stream) {
  const char* fn = "mq_cuda_dequantize_fp8";
  MQ_KRETURN_IF_ERROR(check_dequantize_fp8_args(fn, q, scales, out, rows, cols, per_row));
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  const int64_t n = rows * cols;
  const bool vec = aligned_to(q, 16) && aligned_to(out, 16);
  const int64_t work = (n + 15) / 16;
  if (per_row) {
    return vec ? launch(dequantize_fp8_kernel<true, true>, fn, work, s, q, n, cols, scales, out)
               : launch(dequantize_fp8_kernel<true, false>, fn, work, s, q, n, cols, scales, out);
  }
  return vec ? launch(dequantize_fp8_kernel<false, true>, fn, work, s, q, n, cols, scales, out)
             : launch(dequantize_fp8_kernel<false, false>, fn, work, s, q, n, cols, scales, out);
}

extern "C" mq_status mq_cuda_dequantize_nvfp4(const uint8_t* packed, const uint8_t* block_scales,
                                              float scale2, int64_t rows, int64_t cols, float* out,
                                              mq_stream_t stream) {
  const char* fn = "mq_cuda_dequantize_nvfp4";
  MQ_KRETURN_IF_ERROR(check_dequantize_nvfp4_args(fn, packed, block_scales, out, rows, cols));
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  const int64_t num_blocks = rows * cols / num::kNvfp4Block;
  const bool vec = aligned_to(packed, 8) && aligned_to(out, 16);
  return vec ? launch(dequantize_nvfp4_kernel<true>, fn, num_blocks, s, packed, block_scales,
                      scale2, num_blocks, out)
             : launch(dequantize_nvfp4_kernel<false>, fn, num_blocks, s, packed, block_scales,
                      scale2, num_blocks, out);
}

extern "C" mq_status mq_cuda_dequantize_fp8_block(const uint8_t* q, const float* tile_scales,
                                                  int64_t rows, int64_t cols, float* out,
                                                  mq_stream_t stream) {
  return fp8_block_dequantize("mq_cuda_dequantize_fp8_block", q, tile_scales, rows, cols, out,
                              stream);
}

extern "C" mq_status mq_cuda_dequantize_fp8_block_bf16(const uint8_t* q, const float* tile_scales,
                                                       int64_t rows, int64_t cols, uint16_t* out,
                                                       mq_stream_t stream) {
  return fp8_block_dequantize("mq_cuda_dequantize_fp8_block_bf16", q, tile_scales, rows, cols, out,
                              stream);
}

extern "C" mq_status mq_cuda_dequantize_mxfp4_bf16(const uint8_t* blocks, const uint8_t* scales,
                                                   int64_t rows, int64_t cols, uint16_t* out,
                                                   mq_stream_t stream) {
  const char* fn = "mq_cuda_dequantize_mxfp4_bf16";
  MQ_KRETURN_IF_ERROR(check_dequantize_mxfp4_args(fn, blocks, scales, out, rows, cols));
  return launch(dequantize_mxfp4_kernel, fn, rows * cols / 2,
                reinterpret_cast<cudaStream_t>(stream), blocks, scales, rows * cols / 2, out);
}

extern "C" mq_status mq_cuda_dequantize_int4(const int32_t* qweight, const uint16_t* scales,
                                             int64_t rows, int64_t cols, float* out,
                                             mq_stream_t stream) {
  const char* fn = "mq_cuda_dequantize_int4";
  MQ_KRETURN_IF_ERROR(check_dequantize_int4_args(fn, qweight, scales, out, rows, cols));
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  // cols % 8 == 0: every row start of an aligned output is 32-byte aligned.
  const bool vec = aligned_to(out, 16);
  return vec ? launch(dequantize_int4_kernel<true>, fn, (cols / 8) * rows, s, qweight, scales, rows,
                      cols, out)
             : launch(dequantize_int4_kernel<false>, fn, (cols / 8) * rows, s, qweight, scales,
                      rows, cols, out);
}
