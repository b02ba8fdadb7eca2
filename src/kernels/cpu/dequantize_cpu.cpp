// CPU dequantizers: the bytes of docs/formats.md back to float32 [rows, cols], as a reader of the
// checkpoint computes them: code value times scale, with a two-level scale multiplied out first
// (nvfp4: float(weight_scale) * weight_scale_2), the same product the quantizer divided by.
//
// Codes are decoded with the branch-free `*_simd` variants of numerics.h (equal to the scalar
// decoders for every code), in plain loops that g++ -O3 vectorizes; OpenMP splits each call into
// large independent units, and the unit functions are multiversioned (multiversion.h).
#include <stdint.h>

#include <algorithm>
#include <vector>

#include "arg_checks.h"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"
#include "multiversion.h"
#include "op_args.h"
#include "status.h"

namespace {

namespace num = moequant::num;
using moequant::kernels::check_dequantize_fp8_args;
using moequant::kernels::check_dequantize_fp8_block_args;
using moequant::kernels::check_dequantize_int4_args;
using moequant::kernels::check_dequantize_mxfp4_args;
using moequant::kernels::check_dequantize_nvfp4_args;
using moequant::kernels::kChunkElements;

// out[i] = float(e4m3 q[i]) * scale, i < n.
MQ_ALWAYS_INLINE void fp8_decode(const uint8_t* __restrict q, int64_t n, float scale,
                                 float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = num::e4m3_to_float_simd(q[i]) * scale;
}
// The same product rounded to bf16 (an FP8 block source read as the bf16 weight it encodes).
MQ_ALWAYS_INLINE void fp8_decode(const uint8_t* __restrict q, int64_t n, float scale,
                                 uint16_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = num::float_to_bf16(num::e4m3_to_float_simd(q[i]) * scale);
}

// fp8 over flat elements [begin, end) of a [*, cols] matrix: scale per row (per_row) or one.
MQ_CPU_HOT void fp8_unit(const uint8_t* q, int64_t cols, const float* scales, int32_t per_row,
                         int64_t begin, int64_t end, float* out) {
  if (!per_row) {
    fp8_decode(q + begin, end - begin, scales[0], out + begin);
    return;
  }
  for (int64_t i = begin; i < end;) {
    const int64_t r = i / cols;
    const int64_t stop = std::min(end, (r + 1) * cols);
    fp8_decode(q + i, stop - i, scales[r], out + i);
    i = stop;
  }
}

// nvfp4 over flat blocks [b_begin, b_end) of 16 elements (8 packed bytes, one scale each).
MQ_CPU_HOT void nvfp4_unit(const uint8_t* packed, const uint8_t* block_scales, float scale2,
                           int64_t b_begin, int64_t b_end, float* out) {
  constexpr int64_t kBlock = num::kNvfp4Block;
  constexpr int64_t kBlocks = 64;  // blocks per pass through the stack array
  float scale[kBlocks];
  float byte_scale[kBlocks * kBlock / 2];  // the scale of each packed byte
  for (int64_t s = b_begin; s < b_end; s += kBlocks) {
    const int64_t nb = std::min(kBlocks, b_end - s);
    for (int64_t b = 0; b < nb; ++b) {
      scale[b] = num::e4m3_to_float_simd(block_scales[s + b]) * scale2;  // the product first
    }
    for (int64_t b = 0; b < nb; ++b) {
      for (int64_t j = 0; j < kBlock / 2; ++j) byte_scale[b * (kBlock / 2) + j] = scale[b];
    }
    const uint8_t* src = packed + s * (kBlock / 2);
    float* dst = out + s * kBlock;
    for (int64_t j = 0; j < nb * (kBlock / 2); ++j) {
      dst[2 * j] = num::e2m1_to_float_simd(src[j] & 0xfu) * byte_scale[j];
      dst[2 * j + 1] = num::e2m1_to_float_simd(src[j] >> 4) * byte_scale[j];
    }
  }
}

// fp8_block over rows [r_begin, r_end): each row's 128-column tiles with their tile's scale.
template <typename Out>
MQ_ALWAYS_INLINE void fp8_block_rows(const uint8_t* q, const float* tile_scales, int64_t cols,
                                     int64_t r_begin, int64_t r_end, Out* out) {
  constexpr int64_t kTile = num::kFp8Tile;
  const int64_t tile_cols = (cols + kTile - 1) / kTile;
  for (int64_t r = r_begin; r < r_end; ++r) {
    const float* row_scales = tile_scales + (r / kTile) * tile_cols;
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t c1 = std::min(c0 + kTile, cols);
      fp8_decode(q + r * cols + c0, c1 - c0, row_scales[c0 / kTile], out + r * cols + c0);
    }
  }
}

// The two outputs, each multiversioned (target_clones takes no templates).
MQ_CPU_HOT void fp8_block_unit(const uint8_t* q, const float* tile_scales, int64_t cols,
                               int64_t r_begin, int64_t r_end, float* out) {
  fp8_block_rows(q, tile_scales, cols, r_begin, r_end, out);
}
MQ_CPU_HOT void fp8_block_unit(const uint8_t* q, const float* tile_scales, int64_t cols,
                               int64_t r_begin, int64_t r_end, uint16_t* out) {
  fp8_block_rows(q, tile_scales, cols, r_begin, r_end, out);
}

// int4 over a band of rows [o_begin, o_end), at most kMaxInt4Band: out[o, i] = (q - 8) * scale.
// qweight[c/8, o] holds q[o, c + k] in bits 4k..4k+3 and scales is [G, rows], both transposed
// against `out`. Per span of columns, the band's words are read as contiguous runs of qweight
// rows (one run per word index; reading a column of qweight row by row instead would touch
// lines a whole qweight row apart, which map to the same few cache sets), then each output row
// is written in one sequential run, its words expanded as little-endian nibble pairs.
constexpr int64_t kMaxInt4Band = 64;

MQ_CPU_HOT void int4_unit(const int32_t* qweight, const uint16_t* scales, int64_t rows,
                          int64_t cols, int64_t o_begin, int64_t o_end, float* out) {
  constexpr int64_t kGroup = num::kInt4Group;
  constexpr int64_t kSpan = 8 * kGroup;  // columns per pass through the stack arrays
  const int64_t nr = o_end - o_begin;
  uint32_t words[kMaxInt4Band][kSpan / 8];
  uint8_t bytes[kGroup / 2];
  for (int64_t s0 = 0; s0 < cols; s0 += kSpan) {
    const int64_t span = std::min(kSpan, cols - s0);  // a multiple of 8
    for (int64_t k = 0; k < span / 8; ++k) {
      const int32_t* run = qweight + (s0 / 8 + k) * rows + o_begin;
      for (int64_t r = 0; r < nr; ++r) words[r][k] = static_cast<uint32_t>(run[r]);
    }
    for (int64_t r = 0; r < nr; ++r) {
      for (int64_t c0 = s0; c0 < s0 + span; c0 += kGroup) {
        const int64_t len = std::min(kGroup, cols - c0);  // a multiple of 8
        const float scale = num::half_to_float_simd(scales[(c0 / kGroup) * rows + o_begin + r]);
        const uint32_t* w = words[r] + (c0 - s0) / 8;
        for (int64_t k = 0; k < len / 8; ++k) {
          for (int64_t i = 0; i < 4; ++i) bytes[4 * k + i] = static_cast<uint8_t>(w[k] >> (8 * i));
        }
        float* dst = out + (o_begin + r) * cols + c0;
        for (int64_t j = 0; j < len / 2; ++j) {
          dst[2 * j] = static_cast<float>(static_cast<int32_t>(bytes[j] & 0xfu) - 8) * scale;
          dst[2 * j + 1] = static_cast<float>(static_cast<int32_t>(bytes[j] >> 4) - 8) * scale;
        }
      }
    }
  }
}

template <typename Out>
mq_status fp8_block_dequantize(const char* fn, const uint8_t* q, const float* tile_scales,
                               int64_t rows, int64_t cols, Out* out) {
  MQ_KRETURN_IF_ERROR(check_dequantize_fp8_block_args(fn, q, tile_scales, out, rows, cols));
  // Units of whole rows, about kChunkElements each.
  const int64_t rows_per_unit = std::max<int64_t>(1, kChunkElements / cols);
  const int64_t units = (rows + rows_per_unit - 1) / rows_per_unit;
#pragma omp parallel for schedule(static)
  for (int64_t u = 0; u < units; ++u) {
    const int64_t r_begin = u * rows_per_unit, r_end = std::min(r_begin + rows_per_unit, rows);
    fp8_block_unit(q, tile_scales, cols, r_begin, r_end, out);
  }
  return MQ_OK;
}

}  // namespace

extern "C" mq_status mq_cpu_dequantize_fp8(const uint8_t* q, int64_t rows, int64_t cols,
                                           const float* scales, int32_t per_row, float* out) {
  const char* fn = "mq_cpu_dequantize_fp8";
  MQ_KRETURN_IF_ERROR(check_dequantize_fp8_args(fn, q, scales, out, rows, cols, per_row));
  const int64_t n = rows * cols;
  const int64_t chunks = (n + kChunkElements - 1) / kChunkElements;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t begin = k * kChunkElements, end = std::min(begin + kChunkElements, n);
    fp8_unit(q, cols, scales, per_row, begin, end, out);
  }
  return MQ_OK;
}

extern "C" mq_status mq_cpu_dequantize_nvfp4(const uint8_t* packed, const uint8_t* block_scales,
                                             float scale2, int64_t rows, int64_t cols, float* out) {
  const char* fn = "mq_cpu_dequantize_nvfp4";
  MQ_KRETURN_IF_ERROR(check_dequantize_nvfp4_args(fn, packed, block_scales, out, rows, cols));
  const int64_t num_blocks = rows * cols / num::kNvfp4Block;
  const int64_t blocks_per_chunk = kChunkElements / num::kNvfp4Block;
  const int64_t chunks = (num_blocks + blocks_per_chunk - 1) / blocks_per_chunk;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t b_begin = k * blocks_per_chunk;
    const int64_t b_end = std::min(b_begin + blocks_per_chunk, num_blocks);
    nvfp4_unit(packed, block_scales, scale2, b_begin, b_end, out);
  }
  return MQ_OK;
}

extern "C" mq_status mq_cpu_dequantize_fp8_block(const uint8_t* q, const float* tile_scales,
                                                 int64_t rows, int64_t cols, float* out) {
  return fp8_block_dequantize("mq_cpu_dequantize_fp8_block", q, tile_scales, rows, cols, out);
}

extern "C" mq_status mq_cpu_dequantize_fp8_block_bf16(const uint8_t* q, const float* tile_scales,
                                                      int64_t rows, int64_t cols, uint16_t* out) {
  return fp8_block_dequantize("mq_cpu_dequantize_fp8_block_bf16", q, tile_scales, rows, cols, out);
}

extern "C" mq_status mq_cpu_dequantize_mxfp4_bf16(const uint8_t* blocks, const uint8_t* scales,
                                                  int64_t rows, int64_t cols, uint16_t* out) {
  MQ_KRETURN_IF_ERROR(
      check_dequantize_mxfp4_args("mq_cpu_dequantize_mxfp4_bf16", blocks, scales, out, rows, cols));
  // One 32-element block (16 bytes, one scale) per step: the flat index runs over whole rows.
  // Each byte becomes its two bf16 values with one load from a table of every (scale, byte)
  // pair (256 KB, built once from num::mxfp4_to_bf16: the same bits, 4x faster than per code).
  static const std::vector<uint32_t> pairs = [] {
    std::vector<uint32_t> t(256 * 256);
    for (uint32_t s = 0; s < 256; ++s)
      for (uint32_t v = 0; v < 256; ++v)
        t[s * 256 + v] =
            num::mxfp4_to_bf16(static_cast<uint8_t>(v & 0x0fu), static_cast<uint8_t>(s)) |
            static_cast<uint32_t>(
                num::mxfp4_to_bf16(static_cast<uint8_t>(v >> 4), static_cast<uint8_t>(s)))
                << 16;
    return t;
  }();
  const int64_t num_blocks = rows * cols / num::kMxfp4Block;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < num_blocks; ++b) {
    const uint32_t* row = pairs.data() + 256 * scales[b];
    const uint8_t* in = blocks + b * (num::kMxfp4Block / 2);
    uint16_t* o = out + b * num::kMxfp4Block;
    for (int k = 0; k < num::kMxfp4Block / 2; ++k) {
      const uint32_t v = row[in[k]];  // low nibble first: element 2k in the low half
      o[2 * k] = static_cast<uint16_t>(v & 0xffffu);
      o[2 * k + 1] = static_cast<uint16_t>(v >> 16);
    }
  }
  return MQ_OK;
}

extern "C" mq_status mq_cpu_dequantize_int4(const int32_t* qweight, const uint16_t* scales,
                                            int64_t rows, int64_t cols, float* out) {
  const char* fn = "mq_cpu_dequantize_int4";
  MQ_KRETURN_IF_ERROR(check_dequantize_int4_args(fn, qweight, scales, out, rows, cols));
  const int64_t band = moequant::kernels::int4_band_rows(rows);
  const int64_t bands = (rows + band - 1) / band;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < bands; ++b) {
    const int64_t o_begin = b * band, o_end = std::min(o_begin + band, rows);
    int4_unit(qweight, scales, rows, cols, o_begin, o_end, out);
  }
  return MQ_OK;
}
