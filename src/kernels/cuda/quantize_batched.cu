// mq_cuda_quantize_batched: any number of matrices of one format in ONE kernel launch.
//
// The host cuts every item into the work units of its format (batch.cuh) and uploads one
// descriptor per item (desc_upload.cu: pinned ring, side stream, no wait on the host). fp8,
// fp8_block and int4 launch one CTA per unit over the whole batch; the CTA's warps find their
// item by a 32-ary search over the descriptors and run the same tile bodies as the per-matrix
// kernels (fp8_block_tile.cuh, int4_tile.cuh), or, for fp8, the same vector encoder over a
// chunk. nvfp4 runs the per-matrix kernel itself (quantize_nvfp4.cu), persistent over all units.
// So an item's bytes are those of the per-matrix call for it: the same code decides them, or code
// proven equal to the same numerics.h rule.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "batch.cuh"
#include "cuda_utils.cuh"
#include "fp8_block_tile.cuh"
#include "int4_tile.cuh"
#include "op_args.h"
#include "quant_common.cuh"
#include "quantize_nvfp4.h"

namespace moequant {
namespace kernels {
namespace cuda {
namespace {

// ---- fp8 per-tensor: a unit is kFp8Loads vectors per thread of one CTA -----------------------

constexpr int kFp8Loads = 8;  // 16-byte loads in flight per thread

template <mq_dtype D>
constexpr int64_t kFp8ChunkElems = int64_t{kThreads} * kFp8Loads* kVecElems<D>;

template <mq_dtype D>
__global__ void __launch_bounds__(kThreads)
    quantize_fp8_batched_kernel(const __grid_constant__ BatchArgs args) {
  constexpr int kPer = kVecElems<D>;
  const int64_t unit = blockIdx.x;
  const QuantDesc d = load_desc(args, find_item(args, unit));
  const int64_t c = unit - d.first;  // chunk of the item
  const int64_t n = d.rows * d.cols;
  uint8_t* out = static_cast<uint8_t*>(d.out);
  const float b = d.scale;
  if (d.path == kPathScalar) {
    const int64_t e0 = c * kFp8ChunkElems<D> + threadIdx.x;
#pragma unroll 4
    for (int j = 0; j < kFp8Loads * kPer; ++j) {
      const int64_t i = e0 + static_cast<int64_t>(j) * kThreads;
      if (i < n) out[i] = num::float_to_e4m3(elem_at<D>(d.w, i) / b);
    }
    return;
  }
  const uint4* src = static_cast<const uint4*>(d.w);
  const int64_t nvec = n / kPer;
  const int64_t v0 = c * (kFp8ChunkElems<D> / kPer) + threadIdx.x;
  const float y = __frcp_rn(b);
  const bool ok = fast_div_ok(b);
  uint4 in[kFp8Loads];
#pragma unroll
  for (int j = 0; j < kFp8Loads; ++j) {
    const int64_t v = v0 + j * kThreads;
    in[j] = v < nvec ? ld_vec(src + v) : make_uint4(0, 0, 0, 0);
  }
  uint32_t bad = 0;
#pragma unroll
  for (int j = 0; j < kFp8Loads; ++j) {
    const int64_t v = v0 + j * kThreads;
    uint32_t o[kPer / 4];
    const uint32_t nan = fp8_vec_fast<D>(in[j], b, y, o);
    if (v < nvec) {
      if (ok && nan == 0) {
        store_fp8_vec<D>(out + v * kPer, o);
      } else {
        bad |= 1u << j;
      }
    }
  }
  if (bad != 0) {
#pragma unroll 1
    for (int j = 0; j < kFp8Loads; ++j) {
      if ((bad >> j) & 1u) fp8_elems_exact<D>(d.w, (v0 + j * kThreads) * kPer, kPer, b, out);
    }
  }
  if ((c + 1) * kFp8ChunkElems<D> >= n) {  // the item's last chunk: its last n % kPer elements
    const int64_t i = nvec * kPer + threadIdx.x;
    if (i < n) fp8_elems_exact<D>(d.w, i, 1, b, out);
  }
}

// ---- fp8_block: a unit is a tile ------------------------------------------------------------

template <mq_dtype D>
__global__ void __launch_bounds__(kThreads, Fp8TileShape<D>::kMinBlocks)
    quantize_fp8_block_batched_kernel(const __grid_constant__ BatchArgs args) {
  const int64_t unit = blockIdx.x;
  const QuantDesc d = load_desc(args, find_item(args, unit));
  const int64_t tile_cols = (d.cols + num::kFp8Tile - 1) / num::kFp8Tile;
  uint8_t* out = static_cast<uint8_t*>(d.out);
  float* tile_scales = static_cast<float*>(d.scales);
  if (d.path == kPathVector) {
    fp8_block_tile_vec<D>(d.w, d.rows, d.cols, tile_cols, unit - d.first, out, tile_scales);
  } else {
    fp8_block_tile_scalar<D>(d.w, d.rows, d.cols, tile_cols, unit - d.first, out, tile_scales);
  }
}

// ---- int4: a unit is a (group, row tile) CTA ---------------------------------------------------

// Rows per CTA: the per-matrix fast kernel's for 16-bit input (which fit 48 registers), the
// generic kernel's for f32.
template <mq_dtype D>
constexpr int kInt4BatchRows = D == MQ_DTYPE_BF16 ? 128 : (D == MQ_DTYPE_F16 ? 64 : kInt4Rows);

template <mq_dtype D>
__global__ void __launch_bounds__(kThreads, D == MQ_DTYPE_F32 ? 1 : 5)
    quantize_int4_batched_kernel(const __grid_constant__ BatchArgs args) {
  const int64_t unit = blockIdx.x;
  const QuantDesc d = load_desc(args, find_item(args, unit));
  const int64_t groups = (d.cols + num::kInt4Group - 1) / num::kInt4Group;
  int32_t* qweight = static_cast<int32_t*>(d.out);
  uint16_t* scales = static_cast<uint16_t*>(d.scales);
  const int64_t bid = unit - d.first;
  if constexpr (D == MQ_DTYPE_F32) {
    if (d.path == kPathVector) {
      int4_generic_tile<D, true>(d.w, d.rows, d.cols, groups, bid, d.key_base, qweight, scales,
                                 d.qzeros, d.g_idx, args.first_overflow, args.host_overflow);
    } else {
      int4_generic_tile<D, false>(d.w, d.rows, d.cols, groups, bid, d.key_base, qweight, scales,
                                  d.qzeros, d.g_idx, args.first_overflow, args.host_overflow);
    }
  } else {
    int4_fast_tile<D, kInt4BatchRows<D>>(d.w, d.rows, d.cols, groups, bid, d.path == kPathVector,
                                         d.key_base, qweight, scales, d.qzeros, d.g_idx,
                                         args.first_overflow, args.host_overflow);
  }
}

// ---- host side ---------------------------------------------------------------------------------

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Units and path of one item.
template <mq_dtype D>
void plan_item(mq_format format, const mq_quant_item& it, int64_t* units, int32_t* path) {
  constexpr int kPer = kVecElems<D>;
  const bool in16 = aligned_to(it.w, 16);
  switch (format) {
    case MQ_FORMAT_FP8:
      *units = ceil_div(it.rows * it.cols, kFp8ChunkElems<D>);
      *path = in16 && aligned_to(it.out, kPer) ? kPathVector : kPathScalar;
      return;
    case MQ_FORMAT_NVFP4:
      *units = nvfp4_units(it.rows, it.cols);
      *path = nvfp4_path(D, it.w, it.out);
      return;
    case MQ_FORMAT_FP8_BLOCK:
      *units = ceil_div(it.rows, num::kFp8Tile) * ceil_div(it.cols, num::kFp8Tile);
      *path = in16 && it.cols % kPer == 0 && aligned_to(it.out, kPer) ? kPathVector : kPathScalar;
      return;
    case MQ_FORMAT_INT4:
      *units = ceil_div(it.cols, num::kInt4Group) * ceil_div(it.rows, kInt4BatchRows<D>);
      *path = in16 ? kPathVector : kPathScalar;
      return;
  }
}

template <mq_dtype D>
mq_status launch(const char* fn, mq_format format, const BatchArgs& args, cudaStream_t s) {
  if (format == MQ_FORMAT_NVFP4) return launch_quantize_nvfp4(fn, D, args, s);
  // one CTA per unit
  MQ_KCHECK(args.total <= 0x7fffffff, std::string(fn) + ": the batch has " +
                                          std::to_string(args.total) +
                                          " work units; at most 2^31 - 1 per call (split it)");
  const unsigned grid = static_cast<unsigned>(args.total);
  if (format == MQ_FORMAT_FP8) {
    quantize_fp8_batched_kernel<D><<<grid, kThreads, 0, s>>>(args);
  } else if (format == MQ_FORMAT_FP8_BLOCK) {
    quantize_fp8_block_batched_kernel<D><<<grid, kThreads, 0, s>>>(args);
  } else {
    quantize_int4_batched_kernel<D><<<grid, kThreads, 0, s>>>(args);
  }
  MQ_CUDA_CHECK_LAUNCH(fn, "quantize_batched_kernel");
  return MQ_OK;
}

// After an int4 batch: MQ_ERR_RANGE naming the first item, row and group whose scale overflowed
// fp16 (the kernel recorded the smallest key), as the per-matrix call words it.
template <mq_dtype D>
mq_status int4_overflow_error(const char* fn, const mq_quant_item* items,
                              const std::vector<int64_t>& key_base, Scratch* scratch) {
  unsigned long long key = ~0ull;
  MQ_CUDA_CHECK(fn, cudaMemcpy(&key, scratch->dev_flag, sizeof(key), cudaMemcpyDeviceToHost));
  const unsigned long long all_ones = ~0ull;
  MQ_CUDA_CHECK(fn,
                cudaMemcpy(scratch->dev_flag, &all_ones, sizeof(all_ones), cudaMemcpyHostToDevice));
  const int64_t k = static_cast<int64_t>(key);
  const size_t i = static_cast<size_t>(std::upper_bound(key_base.begin(), key_base.end(), k) -
                                       key_base.begin() - 1);
  const mq_quant_item& it = items[i];
  const int64_t groups = ceil_div(it.cols, num::kInt4Group);
  const int64_t o = (k - key_base[i]) / groups, g = (k - key_base[i]) % groups;
  const int64_t c0 = g * num::kInt4Group, c1 = std::min(c0 + num::kInt4Group, it.cols);
  float amax = 0.0f;
  MQ_CUDA_RETURN_IF_ERROR(group_amax_on_host<D>(fn, it.w, o * it.cols + c0, c1 - c0, &amax));
  const float scale = amax == 0.0f ? 1.0f : amax / 7.0f;
  return set_error(MQ_ERR_RANGE, std::string(fn) + ": item " + std::to_string(i) +
                                     " (int4): the scale of row " + std::to_string(o) + ", group " +
                                     std::to_string(g) + " (group amax " + float_text(amax) +
                                     " / 7 = " + float_text(scale) +
                                     ") does not fit float16 (max 65504); matrix " +
                                     shape_text(it.rows, it.cols));
}

template <mq_dtype D>
mq_status quantize_batched(const char* fn, mq_format format, const mq_quant_item* items, int32_t n,
                           cudaStream_t s) {
  BatchArgs args{};
  args.n = n;
  DescSlot* slot = nullptr;
  QuantDesc* descs = &args.one;
  if (n > 1) {
    MQ_CUDA_RETURN_IF_ERROR(desc_acquire(fn, sizeof(QuantDesc) * static_cast<size_t>(n), &slot));
    descs = static_cast<QuantDesc*>(slot->host);
    args.descs = static_cast<const QuantDesc*>(slot->dev);
  }
  std::vector<int64_t> key_base;  // int4: first overflow key of each item
  int64_t total = 0, keys = 0;
  for (int32_t i = 0; i < n; ++i) {
    const mq_quant_item& it = items[i];
    int64_t units = 0;
    int32_t path = kPathScalar;
    plan_item<D>(format, it, &units, &path);
    descs[i] = QuantDesc{it.w,    it.out, it.scales, it.qzeros, it.g_idx, it.rows,
                         it.cols, total,  keys,      it.scale,  path};
    if (format == MQ_FORMAT_INT4) {
      key_base.push_back(keys);
      keys += it.rows * ceil_div(it.cols, num::kInt4Group);
    }
    total += units;
  }
  args.total = total;

  Scratch* scratch = nullptr;
  unsigned int* host_overflow = nullptr;
  if (format == MQ_FORMAT_INT4) {
    // As mq_cuda_quantize_int4: the kernel writes 1 into the pinned word on overflow and
    // atomicMin's the failing key into dev_flag (all ones otherwise); this call then waits.
    MQ_CUDA_RETURN_IF_ERROR(scratch_acquire(fn, 0, &scratch));
    host_overflow = reinterpret_cast<unsigned int*>(scratch->host_flag);
    *reinterpret_cast<volatile unsigned int*>(host_overflow) = 0u;
    args.first_overflow = scratch->dev_flag;
    args.host_overflow = reinterpret_cast<unsigned int*>(scratch->host_flag_dev);
  }
  if (slot) MQ_CUDA_RETURN_IF_ERROR(desc_upload(fn, slot, sizeof(QuantDesc) * n, s));
  MQ_CUDA_RETURN_IF_ERROR(launch<D>(fn, format, args, s));
  if (slot) MQ_CUDA_RETURN_IF_ERROR(desc_release(fn, slot, s));
  if (format != MQ_FORMAT_INT4) return MQ_OK;
  MQ_CUDA_CHECK(fn, cudaStreamSynchronize(s));
  if (*reinterpret_cast<volatile unsigned int*>(host_overflow) == 0u) return MQ_OK;
  return int4_overflow_error<D>(fn, items, key_base, scratch);
}

}  // namespace
}  // namespace cuda
}  // namespace kernels
}  // namespace moequant

extern "C" mq_status mq_cuda_quantize_batched(mq_format format, mq_dtype dtype,
                                              const mq_quant_item* items, int32_t n,
                                              mq_stream_t stream) {
  using namespace moequant::kernels::cuda;
  const char* fn = "mq_cuda_quantize_batched";
  MQ_KRETURN_IF_ERROR(moequant::kernels::check_quantize_batched_args(fn, format, dtype, items, n));
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  return dispatch_dtype(fn, dtype, [&](auto tag) -> mq_status {
    return quantize_batched<decltype(tag)::value>(fn, format, items, n, s);
  });
}
