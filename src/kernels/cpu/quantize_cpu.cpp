// CPU quantizers: fp8 per-tensor/per-row, nvfp4, fp8 128x128 blocks and GPTQ int4, written
// exactly as FORMATS.md states them. Every rounding goes through numerics.h, the definitions
// the CUDA kernels share, so both paths produce the same bytes. Work is split with OpenMP over
// independent units (elements, blocks, tiles, row groups) whose outputs never overlap.
#include <stdint.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "arg_checks.h"
#include "element_reader.h"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"
#include "status.h"

namespace {

namespace num = moequant::num;
using moequant::kernels::check_multiple;
using moequant::kernels::check_not_null;
using moequant::kernels::check_per_row_flag;
using moequant::kernels::check_positive_shape;
using moequant::kernels::set_error;
using moequant::kernels::shape_text;
using moequant::kernels::with_reader;

constexpr uint32_t kInt4ZeroNibbles = 0x77777777u;  // GPTQ v1 stores zero - 1 = 7 per nibble

template <typename Reader>
float range_amax(const Reader& read, int64_t begin, int64_t end) {
  float m = 0.0f;
  for (int64_t i = begin; i < end; ++i) {
    const float a = num::abs_f(read(i));
    m = a > m ? a : m;
  }
  return m;
}

template <typename Reader>
float tile_amax(const Reader& read, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  float m = 0.0f;
  for (int64_t r = r0; r < r1; ++r) m = std::max(m, range_amax(read, r * cols + c0, r * cols + c1));
  return m;
}

// The GPTQ group scale before fp16 rounding: group_amax / 7, or 1.0 for an all-zero group.
float int4_scale_from_amax(float group_amax) {
  return group_amax == 0.0f ? 1.0f : group_amax / 7.0f;
}

std::string float_text(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

}  // namespace

extern "C" mq_status mq_cpu_quantize_fp8(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                                         const float* scales, int32_t per_row, uint8_t* out) {
  const char* fn = "mq_cpu_quantize_fp8";
  MQ_KRETURN_IF_ERROR(check_not_null(fn, w, "w"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, scales, "scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  MQ_KRETURN_IF_ERROR(check_per_row_flag(fn, per_row));
  return with_reader(fn, w, dtype, [&](auto read) {
    if (per_row) {
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const float scale = scales[r];
        for (int64_t i = r * cols; i < (r + 1) * cols; ++i) {
          out[i] = num::float_to_e4m3(read(i) / scale);
        }
      }
    } else {
      const float scale = scales[0];
      const int64_t n = rows * cols;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) out[i] = num::float_to_e4m3(read(i) / scale);
    }
    return MQ_OK;
  });
}

extern "C" mq_status mq_cpu_quantize_nvfp4(const void* w, mq_dtype dtype, int64_t rows,
                                           int64_t cols, float scale2, uint8_t* packed,
                                           uint8_t* block_scales) {
  const char* fn = "mq_cpu_quantize_nvfp4";
  MQ_KRETURN_IF_ERROR(check_not_null(fn, w, "w"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, packed, "packed"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, block_scales, "block_scales"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  MQ_KRETURN_IF_ERROR(check_multiple(fn, "cols", cols, num::kNvfp4Block, rows, cols));
  MQ_KCHECK(num::is_finite_f(scale2) && scale2 > 0.0f,
            std::string(fn) + ": scale2 must be finite and positive, got " + float_text(scale2));
  return with_reader(fn, w, dtype, [&](auto read) {
    // cols % 16 == 0, so block b is elements [16b, 16b + 16) of the flat matrix, its scale is
    // block_scales[b] (row-major [rows, cols/16]) and its packed bytes are [8b, 8b + 8).
    const int64_t num_blocks = rows * cols / num::kNvfp4Block;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < num_blocks; ++b) {
      const int64_t begin = b * num::kNvfp4Block;
      const uint8_t scale_code =
          num::nvfp4_block_scale(range_amax(read, begin, begin + num::kNvfp4Block), scale2);
      block_scales[b] = scale_code;
      const float divisor = num::e4m3_to_float(scale_code) * scale2;
      for (int64_t j = 0; j < num::kNvfp4Block / 2; ++j) {
        const uint8_t lo = num::float_to_e2m1(read(begin + 2 * j) / divisor);
        const uint8_t hi = num::float_to_e2m1(read(begin + 2 * j + 1) / divisor);
        packed[begin / 2 + j] = static_cast<uint8_t>(lo | (hi << 4));
      }
    }
    return MQ_OK;
  });
}

extern "C" mq_status mq_cpu_quantize_fp8_block(const void* w, mq_dtype dtype, int64_t rows,
                                               int64_t cols, uint8_t* out, float* tile_scales) {
  const char* fn = "mq_cpu_quantize_fp8_block";
  MQ_KRETURN_IF_ERROR(check_not_null(fn, w, "w"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, out, "out"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, tile_scales, "tile_scales"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  return with_reader(fn, w, dtype, [&](auto read) {
    const int64_t tile = num::kFp8Tile;
    const int64_t tile_rows = (rows + tile - 1) / tile;
    const int64_t tile_cols = (cols + tile - 1) / tile;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tile_rows * tile_cols; ++t) {
      const int64_t r0 = (t / tile_cols) * tile, r1 = std::min(r0 + tile, rows);
      const int64_t c0 = (t % tile_cols) * tile, c1 = std::min(c0 + tile, cols);
      // weight_scale_inv = tile_amax / 448 (1.0 for an all-zero tile): the fp8 scale rule.
      const float scale = num::fp8_scale_from_amax(tile_amax(read, cols, r0, r1, c0, c1));
      tile_scales[t] = scale;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t i = r * cols + c0; i < r * cols + c1; ++i) {
          out[i] = num::float_to_e4m3(read(i) / scale);
        }
      }
    }
    return MQ_OK;
  });
}

extern "C" mq_status mq_cpu_quantize_int4(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                                          int32_t* qweight, uint16_t* scales, int32_t* qzeros,
                                          int32_t* g_idx) {
  const char* fn = "mq_cpu_quantize_int4";
  MQ_KRETURN_IF_ERROR(check_not_null(fn, w, "w"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, qweight, "qweight"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, scales, "scales"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, qzeros, "qzeros"));
  MQ_KRETURN_IF_ERROR(check_not_null(fn, g_idx, "g_idx"));
  MQ_KRETURN_IF_ERROR(check_positive_shape(fn, rows, cols));
  MQ_KRETURN_IF_ERROR(check_multiple(fn, "rows", rows, 8, rows, cols));
  MQ_KRETURN_IF_ERROR(check_multiple(fn, "cols", cols, 8, rows, cols));
  return with_reader(fn, w, dtype, [&](auto read) {
    const int64_t group = num::kInt4Group;
    const int64_t groups = (cols + group - 1) / group;
    const int64_t num_units = rows * groups;  // unit u: row u / groups, group u % groups
    int64_t first_overflow = num_units;       // smallest failing unit, so the report is stable

#pragma omp parallel for schedule(static) reduction(min : first_overflow)
    for (int64_t u = 0; u < num_units; ++u) {
      const int64_t o = u / groups, g = u % groups;
      const int64_t c0 = g * group, c1 = std::min(c0 + group, cols);
      bool overflow = false;
      const uint16_t scale_bits = num::float_to_half(
          int4_scale_from_amax(range_amax(read, o * cols + c0, o * cols + c1)), &overflow);
      if (overflow) first_overflow = std::min(first_overflow, u);
      scales[g * rows + o] = scale_bits;
      // Divide by the STORED fp16 scale, so a reader's (q - 8) * scale is what was meant.
      const float stored_scale = num::half_to_float(scale_bits);
      // A group is a whole number of 8-column words: c0 and c1 are multiples of 8.
      for (int64_t c = c0; c < c1; c += 8) {
        uint32_t word = 0;
        for (int64_t k = 0; k < 8; ++k) {
          word |= num::int4_code(read(o * cols + c + k), stored_scale) << (4 * k);
        }
        qweight[(c / 8) * rows + o] = static_cast<int32_t>(word);
      }
    }
    if (first_overflow < num_units) {
      const int64_t o = first_overflow / groups, g = first_overflow % groups;
      const int64_t c0 = g * group, c1 = std::min(c0 + group, cols);
      const float amax = range_amax(read, o * cols + c0, o * cols + c1);
      return set_error(MQ_ERR_RANGE,
                       std::string(fn) + ": the scale of row " + std::to_string(o) + ", group " +
                           std::to_string(g) + " (group amax " + float_text(amax) +
                           " / 7 = " + float_text(int4_scale_from_amax(amax)) +
                           ") does not fit float16 (max 65504); matrix " + shape_text(rows, cols));
    }

    const int64_t num_zero_words = groups * (rows / 8);
    for (int64_t i = 0; i < num_zero_words; ++i) qzeros[i] = static_cast<int32_t>(kInt4ZeroNibbles);
    for (int64_t i = 0; i < cols; ++i) g_idx[i] = static_cast<int32_t>(i / group);
    return MQ_OK;
  });
}
