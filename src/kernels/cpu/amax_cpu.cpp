// mq_cpu_multi_amax: max |w| over many tensors in one multithreaded pass.
//
// Every item's elements are cut into fixed-size chunks and all chunks of all items form one
// parallel loop, so one huge tensor and many small ones both keep every core busy. Each chunk
// writes its partial maxima to its own place in a result buffer; a short serial pass then
// MAX-combines them into the slots, so the result does not depend on scheduling.
//
// Why magnitude bits instead of fabs on floats: for non-negative IEEE values (bf16, fp16 and
// fp32 alike) the order of the values is the order of their bit patterns, and Inf and NaN
// patterns lie above every finite one. So max|w| is the unsigned max of (bits & ~sign): exact,
// vectorized by g++ -O3 for all three dtypes, and NaN/Inf show up as a max at or above the
// format's Inf pattern, with no separate test per element.
#include <stdint.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../enum_args.h"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"
#include "status.h"

namespace {

namespace num = moequant::num;
using moequant::kernels::is_known_dtype;
using moequant::kernels::raw_value;
using moequant::kernels::set_error;

// Elements per unit of parallel work: large enough to amortize scheduling, small enough that
// a single big tensor splits into many pieces.
constexpr int64_t kChunkElements = int64_t{1} << 16;

constexpr uint32_t kF32Inf = 0x7f800000u;
constexpr uint16_t kBf16Inf = 0x7f80u;
constexpr uint16_t kF16Inf = 0x7c00u;

// One piece of one item: flat elements [begin, end). Its partial maxima go to
// results[first_result ...]: one value per-tensor, one per row touched per-channel.
struct Chunk {
  int32_t item;
  int64_t begin;
  int64_t end;
  int64_t first_result;
};

template <typename Bits>
Bits max_magnitude_bits(const Bits* data, int64_t n, Bits magnitude_mask) {
  Bits m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Bits a = data[i] & magnitude_mask;
    m = a > m ? a : m;
  }
  return m;
}

// max|w| over data[begin, begin + n) as float32 magnitude bits; a NaN or Inf anywhere gives a
// value >= kF32Inf.
uint32_t range_amax_bits(const void* data, mq_dtype dtype, int64_t begin, int64_t n) {
  switch (dtype) {
    case MQ_DTYPE_BF16: {
      const uint16_t m = max_magnitude_bits(static_cast<const uint16_t*>(data) + begin, n,
                                            static_cast<uint16_t>(0x7fffu));
      return static_cast<uint32_t>(m) << 16;  // bf16 is the top half of a float32
    }
    case MQ_DTYPE_F16: {
      const uint16_t m = max_magnitude_bits(static_cast<const uint16_t*>(data) + begin, n,
                                            static_cast<uint16_t>(0x7fffu));
      if (m >= kF16Inf) return m == kF16Inf ? kF32Inf : kF32Inf + 1u;
      return num::float_bits(num::half_to_float(m));
    }
    case MQ_DTYPE_F32:
      return max_magnitude_bits(static_cast<const uint32_t*>(data) + begin, n, 0x7fffffffu);
  }
  return 0;  // unreachable: dtypes are validated before the pass
}

mq_status validate_items(const mq_amax_item* items, int32_t num_items) {
  for (int32_t i = 0; i < num_items; ++i) {
    const mq_amax_item& it = items[i];
    const std::string where = "mq_cpu_multi_amax: item " + std::to_string(i) + ": ";
    MQ_KCHECK(it.rows >= 0 && it.cols >= 0, where + "rows and cols must be >= 0, got [" +
                                                std::to_string(it.rows) + ", " +
                                                std::to_string(it.cols) + "]");
    MQ_KCHECK(it.data != nullptr || it.rows * it.cols == 0, where + "data is null");
    MQ_KCHECK(is_known_dtype(raw_value(it.dtype)),
              where + "unknown dtype " + std::to_string(raw_value(it.dtype)));
    MQ_KCHECK(it.slot >= 0, where + "slot must be >= 0, got " + std::to_string(it.slot));
    MQ_KCHECK(it.per_channel == 0 || it.per_channel == 1,
              where + "per_channel must be 0 or 1, got " + std::to_string(it.per_channel));
  }
  return MQ_OK;
}

// Rows of an item touched by flat elements [begin, end) of a per-channel item.
int64_t first_row(const Chunk& c, int64_t cols) {
  return c.begin / cols;
}
int64_t last_row(const Chunk& c, int64_t cols) {
  return (c.end - 1) / cols;
}

std::vector<Chunk> make_chunks(const mq_amax_item* items, int32_t num_items, int64_t* num_results) {
  std::vector<Chunk> chunks;
  int64_t results = 0;
  for (int32_t i = 0; i < num_items; ++i) {
    const int64_t n = items[i].rows * items[i].cols;
    for (int64_t b = 0; b < n; b += kChunkElements) {
      const Chunk c{i, b, std::min(b + kChunkElements, n), results};
      chunks.push_back(c);
      results +=
          items[i].per_channel ? last_row(c, items[i].cols) - first_row(c, items[i].cols) + 1 : 1;
    }
  }
  *num_results = results;
  return chunks;
}

void compute_chunk(const mq_amax_item& it, const Chunk& c, uint32_t* results) {
  if (!it.per_channel) {
    results[c.first_result] = range_amax_bits(it.data, it.dtype, c.begin, c.end - c.begin);
    return;
  }
  const int64_t r0 = first_row(c, it.cols);
  const int64_t r1 = last_row(c, it.cols);
  for (int64_t r = r0; r <= r1; ++r) {
    const int64_t seg_begin = std::max(c.begin, r * it.cols);
    const int64_t seg_end = std::min(c.end, (r + 1) * it.cols);
    results[c.first_result + (r - r0)] =
        range_amax_bits(it.data, it.dtype, seg_begin, seg_end - seg_begin);
  }
}

// MAX-combines one partial result into its slot; NaN/Inf flag the item and count as +Inf.
void combine(uint32_t amax_bits, float* slot, int32_t* item_nonfinite) {
  if (amax_bits >= kF32Inf) {
    *item_nonfinite = 1;
    amax_bits = kF32Inf;
  }
  const float amax = num::bits_float(amax_bits);
  if (amax > *slot) *slot = amax;
}

}  // namespace

extern "C" mq_status mq_cpu_multi_amax(const mq_amax_item* items, int32_t num_items, float* slots,
                                       int32_t* nonfinite) {
  MQ_KCHECK(num_items >= 0,
            "mq_cpu_multi_amax: num_items must be >= 0, got " + std::to_string(num_items));
  if (num_items == 0) return MQ_OK;
  MQ_KCHECK(items != nullptr && slots != nullptr && nonfinite != nullptr,
            "mq_cpu_multi_amax: items, slots and nonfinite must not be null");
  const mq_status status = validate_items(items, num_items);
  if (status != MQ_OK) return status;

  int64_t num_results = 0;
  const std::vector<Chunk> chunks = make_chunks(items, num_items, &num_results);
  std::vector<uint32_t> results(static_cast<size_t>(num_results));
  const int64_t num_chunks = static_cast<int64_t>(chunks.size());

#pragma omp parallel for schedule(dynamic)
  for (int64_t k = 0; k < num_chunks; ++k) {
    compute_chunk(items[chunks[k].item], chunks[k], results.data());
  }

  for (const Chunk& c : chunks) {
    const mq_amax_item& it = items[c.item];
    if (!it.per_channel) {
      combine(results[c.first_result], &slots[it.slot], &nonfinite[c.item]);
      continue;
    }
    const int64_t r0 = first_row(c, it.cols);
    const int64_t r1 = last_row(c, it.cols);
    for (int64_t r = r0; r <= r1; ++r) {
      combine(results[c.first_result + (r - r0)], &slots[it.slot + r], &nonfinite[c.item]);
    }
  }
  return MQ_OK;
}
