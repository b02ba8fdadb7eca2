// The descriptor ring of the batched kernels (cuda_utils.cuh: DescSlot).
//
// Why a ring on a side stream rather than the Scratch buffer: an upload on the caller's stream
// would sit between the previous kernel and this one (a few microseconds of idle device per
// call, a sizeable share of an 8-expert batch), and a single buffer would make each upload wait
// for the kernel that read it last. Here the copy for call k runs while call k-1's kernel does.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "cuda_utils.cuh"

namespace moequant {
namespace kernels {
namespace cuda {
namespace {

struct Ring {
  DescSlot slots[kDescSlots];
  int next = 0;
  cudaStream_t side = nullptr;  // non-blocking: never waits for the legacy default stream
};

// Frees what it holds at thread exit (errors ignored: the runtime may already be shutting down).
struct ThreadRings {
  std::vector<Ring> per_device;
  ~ThreadRings() {
    for (Ring& r : per_device) {
      for (DescSlot& s : r.slots) staging_free(s);
      if (r.side) cudaStreamDestroy(r.side);
    }
  }
};

thread_local ThreadRings t_rings;

mq_status ring_of_device(const char* fn, Ring** out) {
  int device = 0;
  MQ_CUDA_CHECK(fn, cudaGetDevice(&device));
  std::vector<Ring>& all = t_rings.per_device;
  if (static_cast<size_t>(device) >= all.size()) all.resize(static_cast<size_t>(device) + 1);
  Ring& r = all[static_cast<size_t>(device)];
  if (!r.side) {
    MQ_CUDA_CHECK(fn, cudaStreamCreateWithFlags(&r.side, cudaStreamNonBlocking));
    for (DescSlot& s : r.slots) MQ_CUDA_RETURN_IF_ERROR(staging_init(fn, s));
  }
  *out = &r;
  return MQ_OK;
}

}  // namespace

mq_status desc_acquire(const char* fn, size_t bytes, DescSlot** out) {
  Ring* r = nullptr;
  MQ_CUDA_RETURN_IF_ERROR(ring_of_device(fn, &r));
  DescSlot& s = r->slots[r->next];
  r->next = (r->next + 1) % kDescSlots;
  MQ_CUDA_RETURN_IF_ERROR(staging_reserve(fn, s, bytes));
  *out = &s;
  return MQ_OK;
}

mq_status desc_upload(const char* fn, DescSlot* slot, size_t bytes, cudaStream_t stream) {
  Ring* r = nullptr;
  MQ_CUDA_RETURN_IF_ERROR(ring_of_device(fn, &r));
  MQ_CUDA_CHECK(fn, cudaStreamWaitEvent(r->side, slot->consumed, 0));
  MQ_CUDA_CHECK(fn, cudaMemcpyAsync(slot->dev, slot->host, bytes, cudaMemcpyHostToDevice, r->side));
  MQ_CUDA_CHECK(fn, cudaEventRecord(slot->uploaded, r->side));
  MQ_CUDA_CHECK(fn, cudaStreamWaitEvent(stream, slot->uploaded, 0));
  return MQ_OK;
}

mq_status desc_release(const char* fn, DescSlot* slot, cudaStream_t stream) {
  MQ_CUDA_CHECK(fn, cudaEventRecord(slot->consumed, stream));
  return MQ_OK;
}

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
