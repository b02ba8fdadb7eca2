// Private helpers of the CUDA kernels: the CUDA check macro family, 16-byte vector access and
// element decoding per input dtype, launch sizing, and the per-thread cached scratch memory.
// Every .cu file of the kernel layer includes this one header and nothing framework-specific.
#pragma once

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include <type_traits>

#include "../enum_args.h"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"
#include "status.h"

namespace moequant {
namespace kernels {
namespace cuda {

// (cuda_error.cu) Records "<fn>: <cudaXxx> failed: <CUDA's message>" as mq_last_error(); returns
// MQ_ERR_CUDA.
// `call` is the stringified call: only the text before its first '(' is kept. The host helpers
// below take `fn`, the API function they work for, to name it in their messages.
mq_status cuda_error(const char* fn, const char* call, cudaError_t err);

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant

// MQ_CUDA_CHECK(fn, call): returns MQ_ERR_CUDA from the enclosing function when a CUDA runtime
// call fails; the message names the API function `fn` and the CUDA call.
#define MQ_CUDA_CHECK(fn, call)                                                \
  do {                                                                         \
    const cudaError_t mq_cuda_err_ = (call);                                   \
    if (mq_cuda_err_ != cudaSuccess)                                           \
      return ::moequant::kernels::cuda::cuda_error((fn), #call, mq_cuda_err_); \
  } while (0)

// MQ_CUDA_CHECK_LAUNCH(fn, kernel_name): right after a <<<>>> launch.
#define MQ_CUDA_CHECK_LAUNCH(fn, kernel_name)                                          \
  do {                                                                                 \
    const cudaError_t mq_cuda_err_ = cudaGetLastError();                               \
    if (mq_cuda_err_ != cudaSuccess)                                                   \
      return ::moequant::kernels::cuda::cuda_error((fn), "launch of " kernel_name "(", \
                                                   mq_cuda_err_);                      \
  } while (0)

// Returns from the enclosing function when `expr` (an mq_status) is not MQ_OK.
#define MQ_CUDA_RETURN_IF_ERROR(expr)   \
  do {                                  \
    const mq_status mq_st_ = (expr);    \
    if (mq_st_ != MQ_OK) return mq_st_; \
  } while (0)

namespace moequant {
namespace kernels {
namespace cuda {

// ---- host side: devices, launch sizing, scratch ---------------------------------------------

// (device_query.cu) Multiprocessor count of the current device (cached per device).
mq_status sm_count(const char* fn, int* out);

// Blocks of a grid-stride ("persistent") kernel: resident blocks per SM (from the occupancy
// calculator, cached per kernel and device) times the SM count, capped at `max_useful` (>= 1).
mq_status persistent_grid(const char* fn, const void* kernel, int threads, size_t dynamic_smem,
                          int64_t max_useful, int* blocks);

// A pinned host buffer and a device buffer of one capacity, for asynchronous uploads, with the
// events that say when the last copy out of the host side and the last kernel that read the
// device side are done (staging_buffer.cu). The scratch and every descriptor-ring slot are one.
struct StagingBuffer {
  void* host = nullptr;  // pinned
  void* dev = nullptr;
  size_t capacity = 0;
  cudaEvent_t uploaded = nullptr;  // recorded after the last copy out of `host`
  cudaEvent_t consumed = nullptr;  // recorded after the last kernel that read `dev`
};

// Creates the buffer's events (once).
mq_status staging_init(const char* fn, StagingBuffer& b);
// At least `bytes` of capacity, grown geometrically (after waiting for the work that still uses
// the old buffers); then waits (host) for the last upload out of the host side, so that the
// caller may overwrite it.
mq_status staging_reserve(const char* fn, StagingBuffer& b, size_t bytes);
// Frees what the buffer holds (errors ignored: at thread exit the runtime may be shutting down).
void staging_free(StagingBuffer& b);

// Per-thread, per-device memory reused across calls so that no call pays a cudaMalloc
// (scratch.cu): a staging buffer, and a small device/pinned pair for flags read back after a
// kernel. Thread-safe by construction (each host thread has its own); any number of streams may
// be used from one thread.
struct Scratch : StagingBuffer {
  // 8 bytes of device memory, all ones while no kernel recorded anything (an atomicMin target);
  // whoever reads a recorded value puts the all-ones back.
  unsigned long long* dev_flag = nullptr;
  unsigned long long* host_flag = nullptr;      // 8 bytes of pinned memory
  unsigned long long* host_flag_dev = nullptr;  // the same 8 bytes as a kernel writes them
};

// The calling thread's scratch for the current device, with `bytes` (> 0) of capacity. Waits
// (host) for earlier uploads out of the staging buffer, so the caller may overwrite it.
mq_status scratch_acquire(const char* fn, size_t bytes, Scratch** out);

// Copies `bytes` of the staging buffer to the device buffer on `stream`, after every earlier
// kernel that read the device buffer (on any stream) is done.
mq_status scratch_upload(const char* fn, Scratch* s, size_t bytes, cudaStream_t stream);

// Marks the device buffer as read by work enqueued on `stream` so far.
mq_status scratch_release(const char* fn, Scratch* s, cudaStream_t stream);

// A ring of descriptor buffers for the batched kernels (descriptor_ring.cu): per thread and
// device, kDescSlots staging buffers. A call fills one slot's host side and
// uploads it on a side stream that waits only for the last kernel that read that slot, and the
// caller's stream waits for the upload: the copy overlaps the caller's earlier kernels instead of
// queueing between them, and nothing waits on the host unless the device is kDescSlots calls
// behind.
using DescSlot = StagingBuffer;
constexpr int kDescSlots = 4;

// The next slot of the calling thread's ring, with `bytes` (> 0) of capacity; its host side may
// be written at once.
mq_status desc_acquire(const char* fn, size_t bytes, DescSlot** out);

// Uploads `bytes` of the slot and makes `stream` wait for the copy.
mq_status desc_upload(const char* fn, DescSlot* slot, size_t bytes, cudaStream_t stream);

// Marks the slot's device side as read by the work enqueued on `stream` so far.
mq_status desc_release(const char* fn, DescSlot* slot, cudaStream_t stream);

// ---- device side ----------------------------------------------------------------------------

constexpr int kVecBytes = 16;

template <typename T>
__host__ __device__ __forceinline__ bool aligned_to(const T* p, uintptr_t bytes) {
  return (reinterpret_cast<uintptr_t>(p) & (bytes - 1)) == 0;
}

// 16-byte loads of data read once (evict-first), and streaming stores of outputs.
__device__ __forceinline__ uint4 ld_vec(const void* p) {
  return __ldcs(reinterpret_cast<const uint4*>(p));
}
__device__ __forceinline__ void st_vec(void* p, const uint4& v) {
  __stcs(reinterpret_cast<uint4*>(p), v);
}
__device__ __forceinline__ void st_vec8(void* p, const uint2& v) {
  __stcs(reinterpret_cast<uint2*>(p), v);
}
__device__ __forceinline__ void st_vec4(void* p, uint32_t v) {
  __stcs(reinterpret_cast<unsigned int*>(p), v);
}
__device__ __forceinline__ uint32_t vec_word(const uint4& v, int i) {
  return i == 0 ? v.x : (i == 1 ? v.y : (i == 2 ? v.z : v.w));  // i is a compile-time constant
}

// Per input dtype: element size, magnitude mask, the Inf pattern, and the exact conversions of
// numerics.h. Magnitude bits (bits & ~sign) order like the magnitudes themselves, with Inf and
// NaN above every finite value, so a max of |w| can run on integers.
template <mq_dtype D>
struct DType;

template <>
struct DType<MQ_DTYPE_BF16> {
  using Bits = uint16_t;
  static constexpr int kSize = 2;
  static constexpr uint32_t kMagMask = 0x7fffu;
  static constexpr uint32_t kInf = 0x7f80u;
  static __device__ __forceinline__ float to_float(uint32_t bits) {
    return num::bf16_to_float(static_cast<uint16_t>(bits));
  }
};

template <>
struct DType<MQ_DTYPE_F16> {
  using Bits = uint16_t;
  static constexpr int kSize = 2;
  static constexpr uint32_t kMagMask = 0x7fffu;
  static constexpr uint32_t kInf = 0x7c00u;
  static __device__ __forceinline__ float to_float(uint32_t bits) {
    return num::half_to_float(static_cast<uint16_t>(bits));
  }
};

template <>
struct DType<MQ_DTYPE_F32> {
  using Bits = uint32_t;
  static constexpr int kSize = 4;
  static constexpr uint32_t kMagMask = 0x7fffffffu;
  static constexpr uint32_t kInf = 0x7f800000u;
  static __device__ __forceinline__ float to_float(uint32_t bits) { return num::bits_float(bits); }
};

// Elements of dtype D in one 16-byte vector.
template <mq_dtype D>
constexpr int kVecElems = kVecBytes / DType<D>::kSize;

// Raw bits of element k (compile-time constant) of a 16-byte vector.
template <mq_dtype D>
__device__ __forceinline__ uint32_t vec_elem_bits(const uint4& v, int k) {
  if constexpr (DType<D>::kSize == 4) {
    return vec_word(v, k);
  } else {
    const uint32_t w = vec_word(v, k >> 1);
    return (k & 1) ? (w >> 16) : (w & 0xffffu);
  }
}

template <mq_dtype D>
__device__ __forceinline__ float vec_elem(const uint4& v, int k) {
  return DType<D>::to_float(vec_elem_bits<D>(v, k));
}

// Raw bits of element i of an array of dtype D (scalar path).
template <mq_dtype D>
__device__ __forceinline__ uint32_t load_elem_bits(const void* base, int64_t i) {
  return static_cast<const typename DType<D>::Bits*>(base)[i];
}

// Max of the magnitude bits of the elements of one vector, folded into `acc`. For 16-bit
// types `acc` holds two lanes (one per half-word, via the SIMD max) until vec_mag_finish.
template <mq_dtype D>
__device__ __forceinline__ uint32_t vec_mag_fold(uint32_t acc, const uint4& v) {
  if constexpr (DType<D>::kSize == 4) {
    acc = max(acc, max(v.x & 0x7fffffffu, v.y & 0x7fffffffu));
    return max(acc, max(v.z & 0x7fffffffu, v.w & 0x7fffffffu));
  } else {
    const uint32_t a = __vmaxu2(v.x & 0x7fff7fffu, v.y & 0x7fff7fffu);
    const uint32_t b = __vmaxu2(v.z & 0x7fff7fffu, v.w & 0x7fff7fffu);
    return __vmaxu2(acc, __vmaxu2(a, b));
  }
}
template <mq_dtype D>
__device__ __forceinline__ uint32_t vec_mag_finish(uint32_t acc) {
  if constexpr (DType<D>::kSize == 4) {
    return acc;
  } else {
    return max(acc & 0xffffu, acc >> 16);
  }
}

// float32 bits of the magnitude whose dtype bits are `mag`; any NaN or Inf maps to +Inf.
template <mq_dtype D>
__device__ __forceinline__ uint32_t mag_to_f32_bits(uint32_t mag) {
  if (mag >= DType<D>::kInf) return 0x7f800000u;
  return num::float_bits(DType<D>::to_float(mag));
}

// Max over a warp, then over the warps of the block, of non-negative values given as bits
// (unsigned order is value order). `smem` holds one word per warp. Every thread must call it;
// the result is valid in every thread.
template <int kThreads>
__device__ __forceinline__ uint32_t block_max_u32(uint32_t v, uint32_t* smem) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "whole warps");
  v = __reduce_max_sync(0xffffffffu, v);
  if constexpr (kThreads == 32) {
    return v;
  } else {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    v = lane < kThreads / 32 ? smem[lane] : 0u;
    v = __reduce_max_sync(0xffffffffu, v);
    __syncthreads();  // smem may be reused right after
    return v;
  }
}

// Calls f(std::integral_constant<mq_dtype, D>) for the run-time dtype; unknown -> MQ_ERR_INVALID.
template <typename F>
mq_status dispatch_dtype(const char* fn, const mq_dtype& dtype, F&& f) {
  switch (raw_value(dtype)) {  // the integer: an unknown value is never loaded as the enum
    case MQ_DTYPE_BF16:
      return f(std::integral_constant<mq_dtype, MQ_DTYPE_BF16>{});
    case MQ_DTYPE_F16:
      return f(std::integral_constant<mq_dtype, MQ_DTYPE_F16>{});
    case MQ_DTYPE_F32:
      return f(std::integral_constant<mq_dtype, MQ_DTYPE_F32>{});
  }
  return set_error(MQ_ERR_INVALID,
                   std::string(fn) + ": unknown dtype " + std::to_string(raw_value(dtype)));
}

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
