// mq_cuda_available() and the host-side helpers every CUDA kernel file shares: error messages
// naming the CUDA call, SM counts, persistent-grid sizing and the cached scratch memory.
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cuda_utils.cuh"

namespace moequant {
namespace kernels {
namespace cuda {

mq_status cuda_error(const char* fn, const char* call, cudaError_t err) {
  std::string name(call);
  const size_t paren = name.find('(');
  if (paren != std::string::npos) name.resize(paren);
  return set_error(MQ_ERR_CUDA, std::string(fn) + ": " + name + " failed: " +
                                    cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

namespace {

std::mutex g_mutex;                                      // guards the two caches below
std::map<int, int> g_sm_count;                           // device -> SMs
std::map<std::pair<const void*, int>, int> g_occupancy;  // (kernel, device) -> blocks per SM

}  // namespace

mq_status sm_count(const char* fn, int* out) {
  int device = 0;
  MQ_CUDA_CHECK(fn, cudaGetDevice(&device));
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    const auto it = g_sm_count.find(device);
    if (it != g_sm_count.end()) {
      *out = it->second;
      return MQ_OK;
    }
  }
  int sms = 0;
  MQ_CUDA_CHECK(fn, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  std::lock_guard<std::mutex> lock(g_mutex);
  g_sm_count[device] = sms;
  *out = sms;
  return MQ_OK;
}

mq_status persistent_grid(const char* fn, const void* kernel, int threads, size_t dynamic_smem,
                          int64_t max_useful, int* blocks) {
  int device = 0;
  MQ_CUDA_CHECK(fn, cudaGetDevice(&device));
  int sms = 0;
  MQ_CUDA_RETURN_IF_ERROR(sm_count(fn, &sms));
  int per_sm = 0;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    const auto it = g_occupancy.find({kernel, device});
    if (it != g_occupancy.end()) per_sm = it->second;
  }
  if (per_sm == 0) {
    MQ_CUDA_CHECK(
        fn, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, dynamic_smem));
    per_sm = std::max(per_sm, 1);
    std::lock_guard<std::mutex> lock(g_mutex);
    g_occupancy[{kernel, device}] = per_sm;
  }
  const int64_t full = static_cast<int64_t>(sms) * per_sm;
  *blocks = static_cast<int>(std::max<int64_t>(1, std::min(full, max_useful)));
  return MQ_OK;
}

namespace {

// Frees what it holds at thread exit (errors ignored: the runtime may already be shutting down).
struct ThreadScratch {
  std::vector<Scratch> per_device;
  ~ThreadScratch() {
    for (Scratch& s : per_device) {
      if (s.dev) cudaFree(s.dev);
      if (s.host) cudaFreeHost(s.host);
      if (s.dev_flag) cudaFree(s.dev_flag);
      if (s.host_flag) cudaFreeHost(s.host_flag);
      if (s.uploaded) cudaEventDestroy(s.uploaded);
      if (s.consumed) cudaEventDestroy(s.consumed);
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
  if (!s.uploaded) {
    MQ_CUDA_CHECK(fn, cudaEventCreateWithFlags(&s.uploaded, cudaEventDisableTiming));
    MQ_CUDA_CHECK(fn, cudaEventCreateWithFlags(&s.consumed, cudaEventDisableTiming));
    MQ_CUDA_CHECK(fn, cudaMalloc(reinterpret_cast<void**>(&s.dev_flag), sizeof(*s.dev_flag)));
    const unsigned long long all_ones = ~0ull;
    MQ_CUDA_CHECK(fn, cudaMemcpy(s.dev_flag, &all_ones, sizeof(all_ones), cudaMemcpyHostToDevice));
    MQ_CUDA_CHECK(fn, cudaMallocHost(reinterpret_cast<void**>(&s.host_flag), sizeof(*s.host_flag)));
    MQ_CUDA_CHECK(
        fn, cudaHostGetDevicePointer(reinterpret_cast<void**>(&s.host_flag_dev), s.host_flag, 0));
  }
  if (bytes > s.capacity) {
    // Grow geometrically; the old buffers may still be in use by queued work: wait for it.
    const size_t capacity = std::max(bytes, s.capacity + s.capacity / 2);
    MQ_CUDA_CHECK(fn, cudaEventSynchronize(s.consumed));
    MQ_CUDA_CHECK(fn, cudaEventSynchronize(s.uploaded));
    if (s.dev) MQ_CUDA_CHECK(fn, cudaFree(s.dev));
    if (s.host) MQ_CUDA_CHECK(fn, cudaFreeHost(s.host));
    s.dev = nullptr;
    s.host = nullptr;
    s.capacity = 0;
    MQ_CUDA_CHECK(fn, cudaMalloc(&s.dev, capacity));
    MQ_CUDA_CHECK(fn, cudaMallocHost(&s.host, capacity));
    s.capacity = capacity;
  }
  // The previous upload must have left the staging buffer before the caller refills it.
  MQ_CUDA_CHECK(fn, cudaEventSynchronize(s.uploaded));
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

extern "C" int32_t mq_cuda_available(void) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // leave no sticky error behind for the caller's next check
    return 0;
  }
  return count > 0 ? 1 : 0;
}
