// mq_cuda_multi_amax: max |w| of any number of tensors in ONE launch.
//
// The items are laid end to end as one virtual byte range (each padded to 16 bytes) and a
// persistent grid cuts that range into equal contiguous shares, one per block, so one huge tensor
// and thousands of small ones balance the same way. The host uploads one descriptor per item and
// each block's first item (one pinned, asynchronous copy); a block then walks forward through the
// items its share touches, with no search on the device.
//
// The max runs on magnitude bits (bits & ~sign): for non-negative IEEE values the integer order
// is the value order and NaN/Inf patterns lie above every finite one, so a single integer max
// yields both the amax and the non-finite test, 16-bit types two at a time (SIMD max).
// Per-tensor items keep a running max per block while consecutive items share a slot and issue
// one atomicMax per block and slot run; per-channel items reduce each row (a warp per short row,
// the block per long row) into slot + row. A non-finite item is flagged and contributes +Inf,
// as the CPU path does.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "../enum_args.h"
#include "cuda_utils.cuh"

namespace moequant {
namespace kernels {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// A block's share is never smaller than this, so small inputs use few blocks.
constexpr int64_t kMinShareBytes = 32 * 1024;
// Per-channel rows at least this long are reduced by the whole block, shorter ones by one warp.
constexpr int64_t kLongRowBytes = 16 * 1024;
constexpr uint32_t kF32Inf = 0x7f800000u;

// One item as the kernel sees it (48 bytes).
struct AmaxDesc {
  const void* data;
  int64_t numel;
  int64_t cols;   // row length in elements (per-channel items)
  int64_t begin;  // offset of the item in the virtual byte range; a multiple of 16
  int32_t slot;
  int32_t dtype;  // mq_dtype
  int32_t per_channel;
  int32_t pad_;
};

// Max magnitude bits of elements [lo, hi) of `base` seen by thread t of nt cooperating threads:
// the elements before the first 16-byte boundary and after the last one are read singly, the
// rest as 16-byte vectors, kUnroll of them in flight per thread.
template <mq_dtype D, int kUnroll>
__device__ __forceinline__ uint32_t range_mag_max(const void* base, int64_t lo, int64_t hi, int t,
                                                  int nt) {
  constexpr int kEs = DType<D>::kSize;
  constexpr int kPer = kVecElems<D>;
  const unsigned char* p = static_cast<const unsigned char*>(base) + lo * kEs;
  int64_t n = hi - lo;
  const int64_t head =
      min(n, static_cast<int64_t>((16 - (reinterpret_cast<uintptr_t>(p) & 15)) & 15) / kEs);
  uint32_t m = 0;
  if (t < head) m = load_elem_bits<D>(p, t) & DType<D>::kMagMask;
  p += head * kEs;
  n -= head;
  const int64_t nv = n / kPer;
  const unsigned char* tail = p + nv * kVecBytes;
  const int64_t rem = n - nv * kPer;
  if (t < rem) m = max(m, load_elem_bits<D>(tail, t) & DType<D>::kMagMask);

  uint32_t acc = 0;
  int64_t k = t;
  for (; k + (kUnroll - 1) * nt < nv; k += kUnroll * nt) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = ld_vec(p + (k + u * nt) * kVecBytes);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) acc = vec_mag_fold<D>(acc, v[u]);
  }
  for (; k < nv; k += nt) acc = vec_mag_fold<D>(acc, ld_vec(p + k * kVecBytes));
  return max(m, vec_mag_finish<D>(acc));
}

// MAX-combines a float32 magnitude (bits >= 0) into a slot holding a float >= 0 (or -0.0):
// signed-int order equals float order there.
__device__ __forceinline__ void slot_max(float* slot, uint32_t f32_bits) {
  atomicMax(reinterpret_cast<int*>(slot), static_cast<int>(f32_bits));
}

// Elements [lo, hi) of per-tensor item `it`: this thread's max as float32 bits (+Inf and the
// item flagged when non-finite).
template <mq_dtype D>
__device__ __forceinline__ uint32_t tensor_part(const AmaxDesc& d, int64_t lo, int64_t hi,
                                                int32_t* flag) {
  const uint32_t mag = range_mag_max<D, 4>(d.data, lo, hi, threadIdx.x, kThreads);
  const uint32_t f = mag_to_f32_bits<D>(mag);
  if (f == kF32Inf) *flag = 1;
  return f;
}

// Rows of a per-channel item touched by elements [lo, hi): each row's max into slot + row.
template <mq_dtype D>
__device__ __forceinline__ void rows_part(const AmaxDesc& d, int64_t lo, int64_t hi, float* slots,
                                          int32_t* flag, uint32_t* smem) {
  const int64_t cols = d.cols;
  const int64_t r0 = lo / cols, r1 = (hi - 1) / cols;
  if (cols * DType<D>::kSize >= kLongRowBytes) {
    for (int64_t r = r0; r <= r1; ++r) {  // uniform loop: the block reduces one row at a time
      const int64_t a = max(lo, r * cols), b = min(hi, (r + 1) * cols);
      uint32_t f = mag_to_f32_bits<D>(range_mag_max<D, 4>(d.data, a, b, threadIdx.x, kThreads));
      f = block_max_u32<kThreads>(f, smem);
      if (threadIdx.x == 0) {
        if (f == kF32Inf) *flag = 1;
        slot_max(slots + d.slot + r, f);
      }
    }
    return;
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int64_t r = r0 + warp; r <= r1; r += kWarps) {
    const int64_t a = max(lo, r * cols), b = min(hi, (r + 1) * cols);
    uint32_t mag = range_mag_max<D, 2>(d.data, a, b, lane, 32);
    mag = __reduce_max_sync(0xffffffffu, mag);
    if (lane == 0) {
      const uint32_t f = mag_to_f32_bits<D>(mag);
      if (f == kF32Inf) *flag = 1;
      slot_max(slots + d.slot + r, f);
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    multi_amax_kernel(const AmaxDesc* __restrict__ descs, const int32_t* __restrict__ first_item,
                      int32_t num_items, int64_t share, int64_t total, float* slots,
                      int32_t* nonfinite) {
  __shared__ uint32_t smem[kWarps];
  const int64_t s = static_cast<int64_t>(blockIdx.x) * share;
  const int64_t e = min(total, s + share);
  uint32_t run = 0;       // this thread's max for run_slot, float32 bits
  int32_t run_slot = -1;  // slot of the pending per-tensor run (uniform over the block)
  for (int32_t i = first_item[blockIdx.x]; i < num_items; ++i) {
    const AmaxDesc d = descs[i];
    if (d.begin >= e) break;
    const int es = d.dtype == MQ_DTYPE_F32 ? 4 : 2;
    const int64_t lo = max(s - d.begin, int64_t{0}) / es;
    const int64_t hi = min((e - d.begin) / es, d.numel);
    if (lo >= hi) continue;
    if (!d.per_channel) {
      if (d.slot != run_slot) {
        if (run_slot >= 0) {
          run = block_max_u32<kThreads>(run, smem);
          if (threadIdx.x == 0) slot_max(slots + run_slot, run);
        }
        run = 0;
        run_slot = d.slot;
      }
      uint32_t f;
      if (d.dtype == MQ_DTYPE_BF16) {
        f = tensor_part<MQ_DTYPE_BF16>(d, lo, hi, nonfinite + i);
      } else if (d.dtype == MQ_DTYPE_F16) {
        f = tensor_part<MQ_DTYPE_F16>(d, lo, hi, nonfinite + i);
      } else {
        f = tensor_part<MQ_DTYPE_F32>(d, lo, hi, nonfinite + i);
      }
      run = max(run, f);
    } else if (d.dtype == MQ_DTYPE_BF16) {
      rows_part<MQ_DTYPE_BF16>(d, lo, hi, slots, nonfinite + i, smem);
    } else if (d.dtype == MQ_DTYPE_F16) {
      rows_part<MQ_DTYPE_F16>(d, lo, hi, slots, nonfinite + i, smem);
    } else {
      rows_part<MQ_DTYPE_F32>(d, lo, hi, slots, nonfinite + i, smem);
    }
  }
  if (run_slot >= 0) {
    run = block_max_u32<kThreads>(run, smem);
    if (threadIdx.x == 0) slot_max(slots + run_slot, run);
  }
}

int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

// Same rules and messages as the CPU path, plus element alignment of the data pointers. The
// message is only built for a failing item: this runs over thousands of items per call.
mq_status validate(const mq_amax_item* items, int32_t num_items) {
  for (int32_t i = 0; i < num_items; ++i) {
    const mq_amax_item& it = items[i];
    const int32_t dtype = raw_value(it.dtype);  // validated before it is read as the enum
    const bool dtype_ok = is_known_dtype(dtype);
    const uintptr_t es = dtype == MQ_DTYPE_F32 ? 4 : 2;
    const bool ok = it.rows >= 0 && it.cols >= 0 &&
                    (it.data != nullptr || it.rows * it.cols == 0) && dtype_ok && it.slot >= 0 &&
                    (it.per_channel == 0 || it.per_channel == 1) &&
                    reinterpret_cast<uintptr_t>(it.data) % es == 0;
    if (ok) continue;
    const std::string where = "mq_cuda_multi_amax: item " + std::to_string(i) + ": ";
    MQ_KCHECK(it.rows >= 0 && it.cols >= 0, where + "rows and cols must be >= 0, got [" +
                                                std::to_string(it.rows) + ", " +
                                                std::to_string(it.cols) + "]");
    MQ_KCHECK(it.data != nullptr || it.rows * it.cols == 0, where + "data is null");
    MQ_KCHECK(dtype_ok, where + "unknown dtype " + std::to_string(dtype));
    MQ_KCHECK(it.slot >= 0, where + "slot must be >= 0, got " + std::to_string(it.slot));
    MQ_KCHECK(it.per_channel == 0 || it.per_channel == 1,
              where + "per_channel must be 0 or 1, got " + std::to_string(it.per_channel));
    return set_error(MQ_ERR_INVALID, where + "data is not aligned to its element size");
  }
  return MQ_OK;
}

}  // namespace
}  // namespace cuda
}  // namespace kernels
}  // namespace moequant

extern "C" mq_status mq_cuda_multi_amax(const mq_amax_item* items, int32_t num_items, float* slots,
                                        int32_t* nonfinite, mq_stream_t stream) {
  using namespace moequant::kernels::cuda;
  const char* fn = "mq_cuda_multi_amax";
  MQ_KCHECK(num_items >= 0,
            "mq_cuda_multi_amax: num_items must be >= 0, got " + std::to_string(num_items));
  if (num_items == 0) return MQ_OK;
  MQ_KCHECK(items != nullptr && slots != nullptr && nonfinite != nullptr,
            "mq_cuda_multi_amax: items, slots and nonfinite must not be null");
  MQ_CUDA_RETURN_IF_ERROR(validate(items, num_items));

  int64_t total = 0;
  for (int32_t i = 0; i < num_items; ++i) {
    const int64_t es = items[i].dtype == MQ_DTYPE_F32 ? 4 : 2;
    total += round_up(items[i].rows * items[i].cols * es, 16);
  }
  if (total == 0) return MQ_OK;

  int blocks = 0;
  MQ_CUDA_RETURN_IF_ERROR(persistent_grid(fn, reinterpret_cast<const void*>(multi_amax_kernel),
                                          kThreads, 0,
                                          (total + kMinShareBytes - 1) / kMinShareBytes, &blocks));
  const int64_t share = round_up((total + blocks - 1) / blocks, 16);
  blocks = static_cast<int>((total + share - 1) / share);

  const size_t desc_bytes = sizeof(AmaxDesc) * static_cast<size_t>(num_items);
  const size_t bytes = desc_bytes + sizeof(int32_t) * static_cast<size_t>(blocks);
  Scratch* scratch = nullptr;
  MQ_CUDA_RETURN_IF_ERROR(scratch_acquire(fn, bytes, &scratch));
  AmaxDesc* descs = static_cast<AmaxDesc*>(scratch->host);
  int32_t* first =
      reinterpret_cast<int32_t*>(static_cast<unsigned char*>(scratch->host) + desc_bytes);

  // Descriptors, and for each block the first item that ends after its share begins.
  int64_t begin = 0;
  int b = 0;
  for (int32_t i = 0; i < num_items; ++i) {
    const mq_amax_item& it = items[i];
    const int64_t numel = it.rows * it.cols;
    const int64_t padded = round_up(numel * (it.dtype == MQ_DTYPE_F32 ? 4 : 2), 16);
    descs[i] = AmaxDesc{
        it.data, numel, it.cols, begin, it.slot, static_cast<int32_t>(it.dtype), it.per_channel, 0};
    for (; b < blocks && static_cast<int64_t>(b) * share < begin + padded; ++b) first[b] = i;
    begin += padded;
  }
  for (; b < blocks; ++b) first[b] = num_items;

  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  MQ_CUDA_RETURN_IF_ERROR(scratch_upload(fn, scratch, bytes, s));
  const AmaxDesc* d_descs = static_cast<const AmaxDesc*>(scratch->dev);
  const int32_t* d_first = reinterpret_cast<const int32_t*>(
      static_cast<const unsigned char*>(scratch->dev) + desc_bytes);
  multi_amax_kernel<<<blocks, kThreads, 0, s>>>(d_descs, d_first, num_items, share, total, slots,
                                                nonfinite);
  MQ_CUDA_CHECK_LAUNCH(fn, "multi_amax_kernel");
  return scratch_release(fn, scratch, s);
}
