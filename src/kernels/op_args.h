// The argument contract of every quantize / dequantize entry point, checked in one place for
// both variants (mq_cpu_* and mq_cuda_* take the same arguments and must refuse the same ones,
// with the same messages). `fn` names the entry point in the message.
#pragma once

#include <stdint.h>

#include <cstdio>
#include <string>

#include "cpu/arg_checks.h"
#include "enum_args.h"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"

namespace moequant {
namespace kernels {

inline mq_status check_quantize_fp8_args(const char* fn, const void* w, const float* scales,
                                         const uint8_t* out, int64_t rows, int64_t cols,
                                         int32_t per_row) {
  MQ_KRETURN_IF_ERROR(check_not_null(fn, w, "w"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, scales, "scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  return check_per_row_flag(fn, per_row);
}

inline mq_status check_quantize_nvfp4_args(const char* fn, const void* w, const uint8_t* packed,
                                           const uint8_t* block_scales, int64_t rows,
                                           int64_t cols) {
  MQ_KRETURN_IF_ERROR(check_not_null(fn, w, "w"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, packed, "packed"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, block_scales, "block_scales"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  return check_multiple(fn, "cols", cols, num::kNvfp4Block, rows, cols);
}

inline mq_status check_quantize_fp8_block_args(const char* fn, const void* w, const uint8_t* out,
                                               const float* tile_scales, int64_t rows,
                                               int64_t cols) {
  MQ_KRETURN_IF_ERROR(check_not_null(fn, w, "w"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, tile_scales, "tile_scales"));
  return check_positive_shape(fn, rows, cols);
}

inline mq_status check_quantize_int4_args(const char* fn, const void* w, const int32_t* qweight,
                                          const uint16_t* scales, const int32_t* qzeros,
                                          const int32_t* g_idx, int64_t rows, int64_t cols) {
  MQ_KRETURN_IF_ERROR(check_not_null(fn, w, "w"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, qweight, "qweight"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, scales, "scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, qzeros, "qzeros"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, g_idx, "g_idx"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  MQ_KRETURN_IF_ERROR(check_multiple(fn, "rows", rows, 8, rows, cols));
  return check_multiple(fn, "cols", cols, 8, rows, cols);
}

inline mq_status check_dequantize_fp8_args(const char* fn, const uint8_t* q, const float* scales,
                                           const float* out, int64_t rows, int64_t cols,
                                           int32_t per_row) {
  MQ_KRETURN_IF_ERROR(check_not_null(fn, q, "q"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, scales, "scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  return check_per_row_flag(fn, per_row);
}

inline mq_status check_dequantize_nvfp4_args(const char* fn, const uint8_t* packed,
                                             const uint8_t* block_scales, const float* out,
                                             int64_t rows, int64_t cols) {
  MQ_KRETURN_IF_ERROR(check_not_null(fn, packed, "packed"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, block_scales, "block_scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  return check_multiple(fn, "cols", cols, num::kNvfp4Block, rows, cols);
}

inline mq_status check_dequantize_fp8_block_args(const char* fn, const uint8_t* q,
                                                 const float* tile_scales, const void* out,
                                                 int64_t rows, int64_t cols) {
  MQ_KRETURN_IF_ERROR(check_not_null(fn, q, "q"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, tile_scales, "tile_scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  return check_positive_shape(fn, rows, cols);
}

inline mq_status check_dequantize_mxfp4_args(const char* fn, const uint8_t* blocks,
                                             const uint8_t* scales, const uint16_t* out,
                                             int64_t rows, int64_t cols) {
  MQ_KRETURN_IF_ERROR(check_not_null(fn, blocks, "blocks"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, scales, "scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  return check_multiple(fn, "cols", cols, num::kMxfp4Block, rows, cols);
}

inline mq_status check_dequantize_int4_args(const char* fn, const int32_t* qweight,
                                            const uint16_t* scales, const float* out, int64_t rows,
                                            int64_t cols) {
  MQ_KRETURN_IF_ERROR(check_not_null(fn, qweight, "qweight"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, scales, "scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  MQ_KRETURN_IF_ERROR(check_multiple(fn, "rows", rows, 8, rows, cols));
  return check_multiple(fn, "cols", cols, 8, rows, cols);
}

// ---- batched quantize ---------------------------------------------------------------------------

// "fp8", "nvfp4", "fp8_block", "int4"; nullptr for an unknown format.
inline const char* format_name(int32_t format) {
  switch (format) {
    case MQ_FORMAT_FP8:
      return "fp8";
    case MQ_FORMAT_NVFP4:
      return "nvfp4";
    case MQ_FORMAT_FP8_BLOCK:
      return "fp8_block";
    case MQ_FORMAT_INT4:
      return "int4";
  }
  return nullptr;
}

inline int64_t dtype_size(mq_dtype dtype) {
  return dtype == MQ_DTYPE_F32 ? 4 : 2;
}

// One item of a batched call: the per-matrix contract of its format (`fn` names the item), plus
// element alignment of `w` (the CUDA kernels load whole elements) and, for nvfp4, scale2.
inline mq_status check_quantize_item(const char* fn, mq_format format, mq_dtype dtype,
                                     const mq_quant_item& it) {
  switch (format) {
    case MQ_FORMAT_FP8:
      MQ_KRETURN_IF_ERROR(check_not_null(fn, it.w, "w"));
      MQ_KRETURN_IF_ERROR(check_not_null(fn, it.out, "out"));
      MQ_KRETURN_IF_ERROR(check_positive_shape(fn, it.rows, it.cols));
      break;
    case MQ_FORMAT_NVFP4:
      MQ_KRETURN_IF_ERROR(check_quantize_nvfp4_args(fn, it.w, static_cast<uint8_t*>(it.out),
                                                    static_cast<uint8_t*>(it.scales), it.rows,
                                                    it.cols));
      if (!(num::is_finite_f(it.scale) && it.scale > 0.0f)) {
        char value[32];
        std::snprintf(value, sizeof value, "%.9g", static_cast<double>(it.scale));
        return set_error(
            MQ_ERR_INVALID,
            std::string(fn) + ": scale (weight_scale_2) must be finite and positive, got " + value);
      }
      break;
    case MQ_FORMAT_FP8_BLOCK:
      MQ_KRETURN_IF_ERROR(check_quantize_fp8_block_args(fn, it.w, static_cast<uint8_t*>(it.out),
                                                        static_cast<float*>(it.scales), it.rows,
                                                        it.cols));
      break;
    case MQ_FORMAT_INT4:
      MQ_KRETURN_IF_ERROR(check_quantize_int4_args(fn, it.w, static_cast<int32_t*>(it.out),
                                                   static_cast<uint16_t*>(it.scales), it.qzeros,
                                                   it.g_idx, it.rows, it.cols));
      break;
  }
  MQ_KCHECK(reinterpret_cast<uintptr_t>(it.w) % static_cast<uintptr_t>(dtype_size(dtype)) == 0,
            std::string(fn) + ": `w` is not aligned to its element size");
  // every element index fits int64 with room to spare (the kernels index elements with it)
  MQ_KCHECK(it.rows <= (int64_t{1} << 48) / it.cols,
            std::string(fn) + ": matrix too large, " + shape_text(it.rows, it.cols));
  return MQ_OK;
}

// The whole batched call. Messages name the item: "<fn>: item 3 (nvfp4): `out` is null". Items
// are checked cheaply first; a message is built only for the first failing one.
inline mq_status check_quantize_batched_args(const char* fn, const mq_format& format,
                                             const mq_dtype& dtype, const mq_quant_item* items,
                                             int32_t n) {
  MQ_KCHECK(n > 0,
            std::string(fn) + ": n (the number of items) must be > 0, got " + std::to_string(n));
  MQ_KCHECK(items != nullptr, std::string(fn) + ": `items` is null");
  const char* fmt = format_name(raw_value(format));
  MQ_KCHECK(fmt != nullptr,
            std::string(fn) + ": unknown format " + std::to_string(raw_value(format)));
  MQ_KCHECK(is_known_dtype(raw_value(dtype)),
            std::string(fn) + ": unknown dtype " + std::to_string(raw_value(dtype)));
  for (int32_t i = 0; i < n; ++i) {
    if (check_quantize_item(fn, format, dtype, items[i]) == MQ_OK) continue;
    const std::string where = std::string(fn) + ": item " + std::to_string(i) + " (" + fmt + ")";
    return check_quantize_item(where.c_str(), format, dtype, items[i]);
  }
  return MQ_OK;
}

}  // namespace kernels
}  // namespace moequant
