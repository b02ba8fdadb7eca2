// The argument contract of every quantize / dequantize entry point, checked in one place for
// both variants (mq_cpu_* and mq_cuda_* take the same arguments and must refuse the same ones,
// with the same messages). `fn` names the entry point in the message.
#pragma once

#include <stdint.h>

#include "cpu/arg_checks.h"
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
                                                 const float* tile_scales, const float* out,
                                                 int64_t rows, int64_t cols) {
  MQ_KRETURN_IF_ERROR(check_not_null(fn, q, "q"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, tile_scales, "tile_scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  return check_positive_shape(fn, rows, cols);
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

}  // namespace kernels
}  // namespace moequant
