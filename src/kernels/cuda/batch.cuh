// The flattened work space of the batched quantize kernels.
//
// Each item of a batch is cut into work units (its format decides what a unit is: a run of
// vectors, a tile, a group band, a run of nvfp4 blocks), and the units of all items are laid end
// to end: item i owns units [desc[i].first, desc[i].first + units_i). A kernel gets the whole
// list as one BatchArgs parameter: for a single item (the per-matrix entry points) the descriptor
// itself travels in the parameter, so no upload is needed; otherwise `descs` points at the
// uploaded array and a warp finds the item of a unit with a 32-ary search (two rounds for a
// thousand items) instead of a per-unit table.
#pragma once

#include <stdint.h>

#include "cuda_utils.cuh"

namespace moequant {
namespace kernels {
namespace cuda {

// How an item's elements are read and written, decided on the host from its pointers.
enum ItemPath : int32_t {
  kPathScalar = 0,  // element by element, any alignment
  kPathVector =
      1,          // 16-byte input vectors (and the output alignment the format's vector path needs)
  kPathFast = 2,  // nvfp4 on 16-bit input: the threshold-table kernel (quantize_nvfp4.cuh)
};

// One item as the kernels see it (80 bytes).
struct QuantDesc {
  const void* w;
  void* out;
  void* scales;
  int32_t* qzeros;
  int32_t* g_idx;
  int64_t rows;
  int64_t cols;
  int64_t first;     // first unit of the item in the flattened space
  int64_t key_base;  // int4: first overflow key (row * groups + group, counted over all items)
  float scale;       // fp8 scale / nvfp4 scale2
  int32_t path;      // ItemPath
};

struct BatchArgs {
  const QuantDesc* descs;  // device array, used when n > 1
  QuantDesc one;           // the item itself when n == 1
  int32_t n;
  int64_t total;  // units in all
  // int4: the smallest overflowing key (atomicMin; all ones if none) and a pinned flag set to 1
  unsigned long long* first_overflow;
  unsigned int* host_overflow;
};

// Index of the item that owns `unit` (< total). Every lane of the warp must call it with the
// same unit; the result is the same in every lane. Each round, lane l samples candidate
// lo + l * span / 32 (lo + l once span <= 32); the ballot of `first <= unit` is a prefix of the
// lanes (first increases with the index), so its last lane bounds the item to a 32nd of the range.
__device__ __forceinline__ int32_t find_item(const BatchArgs& b, int64_t unit) {
  if (b.n == 1) return 0;
  const int lane = threadIdx.x & 31;
  int32_t lo = 0, hi = b.n;  // the item is in [lo, hi)
  while (hi - lo > 1) {
    const int32_t span = hi - lo;
    const int32_t idx =
        span > 32 ? lo + static_cast<int32_t>((static_cast<int64_t>(span) * lane) >> 5) : lo + lane;
    const bool take = (span > 32 || lane < span) && __ldg(&b.descs[idx].first) <= unit;
    const uint32_t ballot = __ballot_sync(0xffffffffu, take);
    const int last = 31 - __clz(ballot);  // lane 0 always takes: first[lo] <= unit
    const int32_t next_lo = __shfl_sync(0xffffffffu, idx, last);
    if (span <= 32) return next_lo;                               // every candidate was sampled
    if (last < 31) hi = __shfl_sync(0xffffffffu, idx, last + 1);  // a larger first: past the item
    lo = next_lo;
  }
  return lo;
}

// Descriptor of item i.
__device__ __forceinline__ QuantDesc load_desc(const BatchArgs& b, int32_t i) {
  return b.n == 1 ? b.one : b.descs[i];
}

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
