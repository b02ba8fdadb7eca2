// Staging buffers (cuda_utils.cuh: StagingBuffer): pinned host + device memory grown on demand.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda_utils.cuh"

namespace moequant {
namespace kernels {
namespace cuda {

mq_status staging_init(const char* fn, StagingBuffer& b) {
  if (b.uploaded) return MQ_OK;
  MQ_CUDA_CHECK(fn, cudaEventCreateWithFlags(&b.uploaded, cudaEventDisableTiming));
  MQ_CUDA_CHECK(fn, cudaEventCreateWithFlags(&b.consumed, cudaEventDisableTiming));
  return MQ_OK;
}

mq_status staging_reserve(const char* fn, StagingBuffer& b, size_t bytes) {
  if (bytes > b.capacity) {
    // Grow geometrically; the old buffers may still be in use by queued work: wait for it.
    const size_t capacity = std::max(bytes, b.capacity + b.capacity / 2);
    MQ_CUDA_CHECK(fn, cudaEventSynchronize(b.consumed));
    MQ_CUDA_CHECK(fn, cudaEventSynchronize(b.uploaded));
    if (b.dev) MQ_CUDA_CHECK(fn, cudaFree(b.dev));
    if (b.host) MQ_CUDA_CHECK(fn, cudaFreeHost(b.host));
    b.dev = nullptr;
    b.host = nullptr;
    b.capacity = 0;
    MQ_CUDA_CHECK(fn, cudaMalloc(&b.dev, capacity));
    MQ_CUDA_CHECK(fn, cudaMallocHost(&b.host, capacity));
    b.capacity = capacity;
  }
  // The previous upload must have left the staging buffer before the caller refills it.
  MQ_CUDA_CHECK(fn, cudaEventSynchronize(b.uploaded));
  return MQ_OK;
}

void staging_free(StagingBuffer& b) {
  if (b.dev) cudaFree(b.dev);
  if (b.host) cudaFreeHost(b.host);
  if (b.uploaded) cudaEventDestroy(b.uploaded);
  if (b.consumed) cudaEventDestroy(b.consumed);
  b = StagingBuffer{};
}

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
