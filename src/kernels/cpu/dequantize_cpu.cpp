// CPU dequantizers: the bytes of FORMATS.md back to float32 [rows, cols], as a reader of the
// checkpoint computes them: code value times scale, with a two-level scale multiplied out first
// (nvfp4: float(weight_scale) * weight_scale_2), the same product the quantizer divided by.
#include <stdint.h>

#include <algorithm>

#include "arg_checks.h"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"
#include "status.h"

namespace {

namespace num = moequant::num;
using moequant::kernels::check_multiple;
using moequant::kernels::check_not_null;
using moequant::kernels::check_per_row_flag;
using moequant::kernels::check_positive_shape;

}  // namespace

extern "C" mq_status mq_cpu_dequantize_fp8(const uint8_t* q, int64_t rows, int64_t cols,
                                           const float* scales, int32_t per_row, float* out) {
  const char* fn = "mq_cpu_dequantize_fp8";
  MQ_KRETURN_IF_ERROR(check_not_null(fn, q, "q"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, scales, "scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  MQ_KRETURN_IF_ERROR(check_per_row_flag(fn, per_row));
  if (per_row) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float scale = scales[r];
      for (int64_t i = r * cols; i < (r + 1) * cols; ++i) out[i] = num::e4m3_to_float(q[i]) * scale;
    }
  } else {
    const float scale = scales[0];
    const int64_t n = rows * cols;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = num::e4m3_to_float(q[i]) * scale;
  }
  return MQ_OK;
}

extern "C" mq_status mq_cpu_dequantize_nvfp4(const uint8_t* packed, const uint8_t* block_scales,
                                             float scale2, int64_t rows, int64_t cols, float* out) {
  const char* fn = "mq_cpu_dequantize_nvfp4";
  MQ_KRETURN_IF_ERROR(check_not_null(fn, packed, "packed"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, block_scales, "block_scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  MQ_KRETURN_IF_ERROR(check_multiple(fn, "cols", cols, num::kNvfp4Block, rows, cols));
  const int64_t num_blocks = rows * cols / num::kNvfp4Block;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < num_blocks; ++b) {
    const float scale = num::e4m3_to_float(block_scales[b]) * scale2;
    const int64_t begin = b * num::kNvfp4Block;
    for (int64_t j = 0; j < num::kNvfp4Block / 2; ++j) {
      const uint8_t byte = packed[begin / 2 + j];
      out[begin + 2 * j] = num::e2m1_to_float(byte & 0xfu) * scale;
      out[begin + 2 * j + 1] = num::e2m1_to_float(byte >> 4) * scale;
    }
  }
  return MQ_OK;
}

extern "C" mq_status mq_cpu_dequantize_fp8_block(const uint8_t* q, const float* tile_scales,
                                                 int64_t rows, int64_t cols, float* out) {
  const char* fn = "mq_cpu_dequantize_fp8_block";
  MQ_KRETURN_IF_ERROR(check_not_null(fn, q, "q"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, tile_scales, "tile_scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  const int64_t tile = num::kFp8Tile;
  const int64_t tile_cols = (cols + tile - 1) / tile;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row_scales = tile_scales + (r / tile) * tile_cols;
    for (int64_t c0 = 0; c0 < cols; c0 += tile) {
      const float scale = row_scales[c0 / tile];
      const int64_t c1 = std::min(c0 + tile, cols);
      for (int64_t i = r * cols + c0; i < r * cols + c1; ++i) {
        out[i] = num::e4m3_to_float(q[i]) * scale;
      }
    }
  }
  return MQ_OK;
}

extern "C" mq_status mq_cpu_dequantize_int4(const int32_t* qweight, const uint16_t* scales,
                                            int64_t rows, int64_t cols, float* out) {
  const char* fn = "mq_cpu_dequantize_int4";
  MQ_KRETURN_IF_ERROR(check_not_null(fn, qweight, "qweight"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, scales, "scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  MQ_KRETURN_IF_ERROR(check_multiple(fn, "rows", rows, 8, rows, cols));
  MQ_KRETURN_IF_ERROR(check_multiple(fn, "cols", cols, 8, rows, cols));
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t c = 0; c < cols; c += 8) {
      // qweight[c/8, o] holds q[o, c + k] in bits 4k..4k+3; scales is [G, rows].
      const uint32_t word = static_cast<uint32_t>(qweight[(c / 8) * rows + o]);
      const float scale = num::half_to_float(scales[(c / num::kInt4Group) * rows + o]);
      for (int64_t k = 0; k < 8; ++k) {
        const int32_t q = static_cast<int32_t>((word >> (4 * k)) & 0xfu);
        out[o * cols + c + k] = static_cast<float>(q - 8) * scale;
      }
    }
  }
  return MQ_OK;
}
