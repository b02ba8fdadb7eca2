// The nvfp4 kernel of the per-matrix and the batched entry points (quantize_nvfp4.cu): one
// kernel for both, so a batch item gets exactly the bytes of the per-matrix call.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include "batch.cuh"

namespace moequant {
namespace kernels {
namespace cuda {

// Blocks of 16 per work unit (one warp's share of an iteration).
constexpr int64_t kNvfp4UnitBlocks = 32;

// Work units of a [rows, cols] item (cols % 16 == 0).
__host__ __device__ inline int64_t nvfp4_units(int64_t rows, int64_t cols) {
  const int64_t blocks = rows * cols / num::kNvfp4Block;
  return (blocks + kNvfp4UnitBlocks - 1) / kNvfp4UnitBlocks;
}

// The ItemPath of an item: the table kernel for 16-bit input with w 16-byte and packed 4-byte
// aligned; whole-block 16-byte loads when w is 16-byte and packed 8-byte aligned; else elements.
inline int32_t nvfp4_path(mq_dtype dtype, const void* w, const void* packed) {
  if (dtype != MQ_DTYPE_F32 && aligned_to(w, 16) && aligned_to(packed, 4)) return kPathFast;
  return aligned_to(w, 16) && aligned_to(packed, 8) ? kPathVector : kPathScalar;
}

// Launches the kernel over every unit of `args` on `stream` (the descriptors must be ready).
mq_status launch_quantize_nvfp4(const char* fn, const mq_dtype& dtype, const BatchArgs& args,
                                cudaStream_t stream);

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
