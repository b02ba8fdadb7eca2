// What the device offers: whether there is one, its SM count and how many blocks of a kernel
// fit on an SM (both cached), and the grid of a persistent kernel from them.
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
