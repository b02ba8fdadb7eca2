// Device helpers of bench_kernels: random bf16 data and the PyTorch-style per-tensor amax loop
// (torch.abs into a temporary, then torch.amax over it: two launches and three passes over the
// bytes per tensor), written plainly as the yardstick our one-launch kernel is compared with.
#include <cuda_runtime.h>
#include <stdint.h>

#include "bench_kernels_gpu.h"

namespace moequant {
namespace bench {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

// Sum of four uniforms, centred: roughly normal, with a sign and no exact zeros in practice.
__global__ void fill_kernel(uint16_t* dst, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const uint64_t h = mix(seed ^ mix(static_cast<uint64_t>(i)));
    float u = 0.0f;
    for (int k = 0; k < 4; ++k)
      u += static_cast<float>((h >> (16 * k)) & 0xffffu) * (1.0f / 65536.0f);
    const float v = (u - 2.0f) * 1.7320508f * scale;
    dst[i] = static_cast<uint16_t>(__float_as_uint(v) >> 16);
  }
}

// torch.abs on bf16: elementwise, 16-byte vectors.
__global__ void abs_kernel(const uint4* src, uint4* dst, int64_t nvec) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < nvec;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    uint4 v = src[i];
    v.x &= 0x7fff7fffu;
    v.y &= 0x7fff7fffu;
    v.z &= 0x7fff7fffu;
    v.w &= 0x7fff7fffu;
    dst[i] = v;
  }
}

// torch.amax over a bf16 tensor of non-negative values: grid-stride max, then per block one
// atomicMax on the float's bits.
__global__ void amax_kernel(const uint4* src, int64_t nvec, float* out) {
  __shared__ float warp_max[kThreads / 32];
  float m = 0.0f;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < nvec;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const uint4 v = src[i];
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    for (int k = 0; k < 4; ++k) {
      m = fmaxf(m, __uint_as_float(w[k] << 16));
      m = fmaxf(m, __uint_as_float(w[k] & 0xffff0000u));
    }
  }
  for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 1; k < kThreads / 32; ++k) m = fmaxf(m, warp_max[k]);
    atomicMax(reinterpret_cast<int*>(out), __float_as_int(m));
  }
}

}  // namespace

cudaError_t fill_random_bf16(void* dst, int64_t n, uint64_t seed, float scale, cudaStream_t s) {
  fill_kernel<<<4096, kThreads, 0, s>>>(static_cast<uint16_t*>(dst), n, seed, scale);
  return cudaGetLastError();
}

cudaError_t torchlike_amax_loop(const void* const* tensors, const int64_t* numel, int count,
                                void* tmp, float* out, int sms, cudaStream_t s) {
  for (int i = 0; i < count; ++i) {
    const int64_t nvec = numel[i] / 8;  // bench shapes are multiples of 8 elements
    const int64_t want = (nvec + kThreads - 1) / kThreads;
    const int blocks = static_cast<int>(want < sms * 8 ? want : sms * 8);
    abs_kernel<<<blocks, kThreads, 0, s>>>(static_cast<const uint4*>(tensors[i]),
                                           static_cast<uint4*>(tmp), nvec);
    amax_kernel<<<blocks, kThreads, 0, s>>>(static_cast<const uint4*>(tmp), nvec, out + i);
  }
  return cudaGetLastError();
}

}  // namespace bench
}  // namespace moequant
