// The per-thread, per-device scratch of the kernels (cuda_utils.cuh: Scratch): a staging buffer
// plus the flag pair some kernels report through.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "cuda_utils.cuh"

namespace moequant {
namespace kernels {
namespace cuda {

namespace {

// Frees what it holds at thread exit (errors ignored: the runtime may already be shutting down).
struct ThreadScratch {
  std::vector<Scratch> per_device;
  ~ThreadScratch() {
    for (Scratch& s : per_device) {
      if (s.dev_flag) cudaFree(s.dev_flag);
      if (s.host_flag) cudaFreeHost(s.host_flag);
      staging_free(s);
    }
  }
};

thread_local ThreadScratch t_scratch;

}  // namespace

mq_status scratch_acquire(const char* fn, size_t bytes, Scratch** out) {
  int device = 0;
  MQ_CUDA_CHECK(fn, cudaGetDevice(&device));
  std::vector<Scratch>& all = t_scratch.per_device;
  if (static_cast<size_t>(device) >= all.size()) all.resize(static_cast<size_t>(device) + 1);
  Scratch& s = all[static_cast<size_t>(device)];
  if (!s.dev_flag) {
    MQ_CUDA_RETURN_IF_ERROR(staging_init(fn, s));
    MQ_CUDA_CHECK(fn, cudaMalloc(reinterpret_cast<void**>(&s.dev_flag), sizeof(*s.dev_flag)));
    const unsigned long long all_ones = ~0ull;
    MQ_CUDA_CHECK(fn, cudaMemcpy(s.dev_flag, &all_ones, sizeof(all_ones), cudaMemcpyHostToDevice));
    MQ_CUDA_CHECK(fn, cudaMallocHost(reinterpret_cast<void**>(&s.host_flag), sizeof(*s.host_flag)));
    MQ_CUDA_CHECK(
        fn, cudaHostGetDevicePointer(reinterpret_cast<void**>(&s.host_flag_dev), s.host_flag, 0));
  }
  MQ_CUDA_RETURN_IF_ERROR(staging_reserve(fn, s, bytes));
  *out = &s;
  return MQ_OK;
}

mq_status scratch_upload(const char* fn, Scratch* s, size_t bytes, cudaStream_t stream) {
  MQ_CUDA_CHECK(fn, cudaStreamWaitEvent(stream, s->consumed, 0));
  MQ_CUDA_CHECK(fn, cudaMemcpyAsync(s->dev, s->host, bytes, cudaMemcpyHostToDevice, stream));
  MQ_CUDA_CHECK(fn, cudaEventRecord(s->uploaded, stream));
  return MQ_OK;
}

mq_status scratch_release(const char* fn, Scratch* s, cudaStream_t stream) {
  MQ_CUDA_CHECK(fn, cudaEventRecord(s->consumed, stream));
  return MQ_OK;
}

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
