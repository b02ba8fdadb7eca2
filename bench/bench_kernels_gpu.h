// Device helpers of bench_kernels (bench_kernels_gpu.cu): random fill and the per-tensor
// "abs then reduce" loop that stands in for PyTorch's `w.abs().amax()` in C++.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace moequant {
namespace bench {

// Fills n bf16 values with a deterministic pseudo-normal sequence times `scale` (never zeros).
cudaError_t fill_random_bf16(void* dst, int64_t n, uint64_t seed, float scale, cudaStream_t s);

// For each tensor i: one launch writes |w_i| into `tmp` (as torch.abs does), a second reduces
// tmp to max, into out[i] (out must be zeroed first). 2 launches per tensor, no host sync.
// `tmp` holds at least the largest tensor.
cudaError_t torchlike_amax_loop(const void* const* tensors, const int64_t* numel, int count,
                                void* tmp, float* out, int sms, cudaStream_t s);

}  // namespace bench
}  // namespace moequant
