// CPU quantizers: fp8 per-tensor/per-row, nvfp4, fp8 128x128 blocks and GPTQ int4, written
// exactly as docs/formats.md states them. Every rounding goes through numerics.h: the branch-free
// `*_simd` variants, proved equal to the scalar definitions that the CUDA kernels share, so
// both paths produce the same bytes.
//
// Layout of the work: OpenMP splits each call into large independent units (runs of elements,
// runs of nvfp4 blocks, bands of fp8 tiles, bands of int4 rows) whose outputs never overlap,
// in contiguous per-thread ranges (schedule(static)). Inside a unit the hot loops are plain
// counted loops over arrays that g++ -O3 vectorizes: convert to float32, divide (a true IEEE
// division, never a multiplication by a reciprocal), encode with branch-free bit arithmetic.
// Per-block scales are computed a stripe of blocks at a time into small stack arrays, so the
// element loops see one divisor per block and no scalar code. The unit functions are
// multiversioned (multiversion.h): SSE2 everywhere, AVX2 where the CPU has it, same bytes.
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "arg_checks.h"
#include "element_reader.h"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"
#include "multiversion.h"
#include "op_args.h"
#include "status.h"

namespace {

namespace num = moequant::num;
using moequant::kernels::check_quantize_fp8_args;
using moequant::kernels::check_quantize_fp8_block_args;
using moequant::kernels::check_quantize_int4_args;
using moequant::kernels::check_quantize_nvfp4_args;
using moequant::kernels::kChunkElements;
using moequant::kernels::set_error;
using moequant::kernels::shape_text;
using moequant::kernels::with_input;
using moequant::kernels::with_reader;

constexpr uint32_t kInt4ZeroNibbles = 0x77777777u;  // GPTQ v1 stores zero - 1 = 7 per nibble

// ---- scalar helpers (error messages) ---------------------------------------------------------

template <typename Reader>
float range_amax(const Reader& read, int64_t begin, int64_t end) {
  float m = 0.0f;
  for (int64_t i = begin; i < end; ++i) {
    const float a = num::abs_f(read(i));
    m = a > m ? a : m;
  }
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

// ---- vectorized building blocks (inlined into the multiversioned unit functions) -------------

// max key (see element_reader.h) over w[0, n): max|w| skipping NaN, as an integer.
template <typename In>
MQ_ALWAYS_INLINE typename In::Key max_key(const typename In::Raw* w, int64_t n) {
  typename In::Key m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const typename In::Key k = In::key(w[i]);
    m = k > m ? k : m;
  }
  return m;
}

// Codes are computed into 32-bit words in stack arrays and narrowed to bytes in a separate loop:
// g++ then vectorizes the arithmetic in 32-bit lanes throughout (see numerics.h).
constexpr int64_t kStripe = 512;  // elements per pass through the stack arrays

// out[i] = e4m3(float(w[i]) / scale), i < n.
template <typename In>
MQ_ALWAYS_INLINE void fp8_encode(const typename In::Raw* __restrict w, int64_t n, float scale,
                                 uint8_t* __restrict out) {
  uint32_t code[kStripe];
  for (int64_t s = 0; s < n; s += kStripe) {
    const int64_t m = std::min(kStripe, n - s);
    for (int64_t i = 0; i < m; ++i)
      code[i] = num::float_to_e4m3_simd(In::to_float(w[s + i]) / scale);
    for (int64_t i = 0; i < m; ++i) out[s + i] = static_cast<uint8_t>(code[i]);
  }
}

// The 32-bit word whose little-endian bytes are p[0..3].
MQ_ALWAYS_INLINE uint32_t le_word(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

// ---- units of work -------------------------------------------------------------------------

// fp8 over flat elements [begin, end) of a [*, cols] matrix: scale per row (per_row) or one.
template <typename In>
MQ_CPU_HOT void fp8_unit(const typename In::Raw* w, int64_t cols, const float* scales,
                         int32_t per_row, int64_t begin, int64_t end, uint8_t* out) {
  if (!per_row) {
    fp8_encode<In>(w + begin, end - begin, scales[0], out + begin);
    return;
  }
  for (int64_t i = begin; i < end;) {
    const int64_t r = i / cols;
    const int64_t stop = std::min(end, (r + 1) * cols);
    fp8_encode<In>(w + i, stop - i, scales[r], out + i);
    i = stop;
  }
}

// nvfp4 over flat blocks [b_begin, b_end) (cols % 16 == 0, so block b is elements
// [16b, 16b + 16), its scale block_scales[b] and its packed bytes [8b, 8b + 8)). Per stripe of
// blocks: the blocks' amax, their scales and divisors (vectorized over blocks), then one output
// byte per lane from an element pair (element 2j in the low nibble), then the narrowing.
template <typename In>
MQ_CPU_HOT void nvfp4_unit(const typename In::Raw* w, float scale2, int64_t b_begin, int64_t b_end,
                           uint8_t* packed, uint8_t* block_scales) {
  constexpr int64_t kBlock = num::kNvfp4Block;
  constexpr int64_t kBlocks = kStripe / kBlock;  // blocks per pass through the stack arrays
  float amax[kBlocks];
  uint32_t scale_code[kBlocks];
  float divisor[kBlocks];
  uint32_t byte[kStripe / 2];
  for (int64_t s = b_begin; s < b_end; s += kBlocks) {
    const int64_t nb = std::min(kBlocks, b_end - s);
    const typename In::Raw* src = w + s * kBlock;
    for (int64_t b = 0; b < nb; ++b) amax[b] = In::key_value(max_key<In>(src + b * kBlock, kBlock));
    for (int64_t b = 0; b < nb; ++b) {
      scale_code[b] = num::nvfp4_block_scale_simd(amax[b], scale2);
      divisor[b] = num::e4m3_to_float_simd(static_cast<uint8_t>(scale_code[b])) * scale2;
    }
    for (int64_t b = 0; b < nb; ++b) block_scales[s + b] = static_cast<uint8_t>(scale_code[b]);
    for (int64_t b = 0; b < nb; ++b) {
      const float d = divisor[b];
      for (int64_t j = 0; j < kBlock / 2; ++j) {
        const typename In::Pair p = In::load_pair(src + b * kBlock, j);
        byte[b * (kBlock / 2) + j] = num::float_to_e2m1_simd(In::pair_lo(p) / d) |
                                     (num::float_to_e2m1_simd(In::pair_hi(p) / d) << 4);
      }
    }
    uint8_t* dst = packed + s * (kBlock / 2);
    for (int64_t i = 0; i < nb * (kBlock / 2); ++i) dst[i] = static_cast<uint8_t>(byte[i]);
  }
}

// fp8_block works in units of one tile row (128 rows) by the tiles [t0, t1) of one column
// group: whole tile rows, unless there are too few of them to keep every thread busy. A unit's
// bytes need its tiles' amax first, so it is read twice: an amax pass streams it from memory,
// the quantization pass re-reads it from cache. So that the memory stream overlaps the
// arithmetic, each thread runs the amax pass of its next unit interleaved, row by row, with the
// quantization pass of the current one.
struct Fp8BlockUnits {
  int64_t rows, cols, tile_cols, per_unit, units_per_row;
  // Rows [r0, r1) and tiles [t0, t1) of unit u (tile row u / units_per_row).
  void unit(int64_t u, int64_t* r0, int64_t* r1, int64_t* t0, int64_t* t1) const {
    const int64_t tr = u / units_per_row;
    *r0 = tr * num::kFp8Tile;
    *r1 = std::min(*r0 + num::kFp8Tile, rows);
    *t0 = (u % units_per_row) * per_unit;
    *t1 = std::min(*t0 + per_unit, tile_cols);
  }
};

// m[t - t0] = max(m[t - t0], max key of the row's part of tile t), t in [t0, t1).
template <typename In>
MQ_ALWAYS_INLINE void fp8_block_row_amax(const typename In::Raw* row, int64_t cols, int64_t t0,
                                         int64_t t1, typename In::Key* m) {
  constexpr int64_t kTile = num::kFp8Tile;
  for (int64_t t = t0; t < t1; ++t) {
    m[t - t0] =
        std::max(m[t - t0], max_key<In>(row + t * kTile, std::min(kTile, cols - t * kTile)));
  }
}

// The bytes of one row's part of tiles [t0, t1), with their scales scale[t - t0].
template <typename In>
MQ_ALWAYS_INLINE void fp8_block_row_codes(const typename In::Raw* row, int64_t cols, int64_t t0,
                                          int64_t t1, const float* scale, uint8_t* out_row) {
  constexpr int64_t kTile = num::kFp8Tile;
  constexpr int64_t kSpan = 8;  // tiles per pass through the stack array
  uint32_t code[kSpan * kTile];
  for (int64_t s0 = t0; s0 < t1; s0 += kSpan) {
    const int64_t s1 = std::min(s0 + kSpan, t1);
    for (int64_t t = s0; t < s1; ++t) {
      const float sc = scale[t - t0];
      const typename In::Raw* src = row + t * kTile;
      uint32_t* dst = code + (t - s0) * kTile;
      const int64_t len = std::min(kTile, cols - t * kTile);
      for (int64_t i = 0; i < len; ++i) dst[i] = num::float_to_e4m3_simd(In::to_float(src[i]) / sc);
    }
    const int64_t c0 = s0 * kTile, n = std::min(s1 * kTile, cols) - c0;
    for (int64_t i = 0; i < n; ++i) out_row[c0 + i] = static_cast<uint8_t>(code[i]);
  }
}

// The units [u_begin, u_end), in order.
template <typename In>
MQ_CPU_HOT void fp8_block_units(const typename In::Raw* w, const Fp8BlockUnits& g, int64_t u_begin,
                                int64_t u_end, uint8_t* out, float* tile_scales) {
  using Key = typename In::Key;
  if (u_begin >= u_end) return;
  std::vector<Key> amax(static_cast<size_t>(2 * g.per_unit));  // this unit's, the next one's
  std::vector<float> scale(static_cast<size_t>(g.per_unit));
  int64_t r0, r1, t0, t1;
  g.unit(u_begin, &r0, &r1, &t0, &t1);
  for (int64_t r = r0; r < r1; ++r) {
    fp8_block_row_amax<In>(w + r * g.cols, g.cols, t0, t1, amax.data());
  }
  for (int64_t u = u_begin; u < u_end; ++u) {
    Key* cur = amax.data() + ((u - u_begin) % 2) * g.per_unit;
    Key* next = amax.data() + ((u - u_begin + 1) % 2) * g.per_unit;
    g.unit(u, &r0, &r1, &t0, &t1);
    for (int64_t t = t0; t < t1; ++t) {
      // weight_scale_inv = tile_amax / 448 (1.0 for an all-zero tile): the fp8 scale rule.
      scale[t - t0] = num::fp8_scale_from_amax(In::key_value(cur[t - t0]));
      tile_scales[(r0 / num::kFp8Tile) * g.tile_cols + t] = scale[t - t0];
    }
    int64_t n0 = 0, n1 = 0, nt0 = 0, nt1 = 0;  // the next unit, if any
    if (u + 1 < u_end) g.unit(u + 1, &n0, &n1, &nt0, &nt1);
    std::fill(next, next + g.per_unit, Key{0});
    for (int64_t i = 0; i < std::max(r1 - r0, n1 - n0); ++i) {
      if (r0 + i < r1) {
        const int64_t r = r0 + i;
        fp8_block_row_codes<In>(w + r * g.cols, g.cols, t0, t1, scale.data(), out + r * g.cols);
      }
      if (n0 + i < n1) fp8_block_row_amax<In>(w + (n0 + i) * g.cols, g.cols, nt0, nt1, next);
    }
  }
}

// int4 over a band of rows [o_begin, o_end), at most kMaxInt4Band: per group, the rows' amax and
// fp16 scales (vectorized over rows), then one byte per lane from an element pair, then the
// bytes as little-endian words, written transposed: qweight[c/8, o_begin ..] is contiguous.
// Returns the first (row-major) unit o * groups + g whose scale overflows fp16, or INT64_MAX.
constexpr int64_t kMaxInt4Band = 64;  // multiversion.h: int4_band_rows

template <typename In>
MQ_ALWAYS_INLINE void int4_group_bytes(const typename In::Raw* __restrict w, int64_t len,
                                       float stored_scale, uint8_t* __restrict bytes) {
  uint32_t byte[num::kInt4Group / 2];
  for (int64_t j = 0; j < len / 2; ++j) {
    const typename In::Pair p = In::load_pair(w, j);
    byte[j] = num::int4_code_quotient_simd(In::pair_lo(p) / stored_scale) |
              (num::int4_code_quotient_simd(In::pair_hi(p) / stored_scale) << 4);
  }
  for (int64_t j = 0; j < len / 2; ++j) bytes[j] = static_cast<uint8_t>(byte[j]);
}

template <typename In>
MQ_CPU_HOT int64_t int4_unit(const typename In::Raw* w, int64_t rows, int64_t cols, int64_t o_begin,
                             int64_t o_end, int32_t* qweight, uint16_t* scales) {
  constexpr int64_t kGroup = num::kInt4Group;
  const int64_t groups = (cols + kGroup - 1) / kGroup;
  const int64_t nr = o_end - o_begin;
  int64_t first_overflow = INT64_MAX;
  float amax[kMaxInt4Band];
  uint32_t half[kMaxInt4Band];
  float stored[kMaxInt4Band];
  uint8_t bytes[kMaxInt4Band][kGroup / 2];
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t c0 = g * kGroup;
    const typename In::Raw* src = w + o_begin * cols + c0;
    // The band's rows are far apart, which the hardware prefetchers do not follow: fetch the
    // next group's part of each row while this group is computed.
    if (g + 1 < groups) {
      constexpr int64_t kLine = 64 / sizeof(typename In::Raw);  // elements per cache line
      const int64_t next_len = std::min(kGroup, cols - c0 - kGroup);
      for (int64_t r = 0; r < nr; ++r) {
        for (int64_t i = 0; i < next_len; i += kLine)
          __builtin_prefetch(src + r * cols + kGroup + i);
      }
    }
    const int64_t len = std::min(kGroup, cols - c0);  // a multiple of 8
    for (int64_t r = 0; r < nr; ++r) amax[r] = In::key_value(max_key<In>(src + r * cols, len));
    for (int64_t r = 0; r < nr; ++r) {
      // group_amax / 7 (1.0 for an all-zero group), rounded to fp16; a true division
      const uint32_t scale =
          num::select_bits(amax[r] == 0.0f, num::float_bits(1.0f), num::float_bits(amax[r] / 7.0f));
      half[r] = num::float_to_half_simd(num::bits_float(scale));
      // Divide by the STORED fp16 scale, so a reader's (q - 8) * scale is what was meant.
      stored[r] = num::half_to_float_simd(static_cast<uint16_t>(half[r]));
    }
    for (int64_t r = 0; r < nr; ++r) {
      scales[g * rows + o_begin + r] = static_cast<uint16_t>(half[r]);
      if ((half[r] & 0x7fffu) == 0x7c00u) {  // overflow (float_to_half_simd)
        first_overflow = std::min(first_overflow, (o_begin + r) * groups + g);
      }
    }
    for (int64_t r = 0; r < nr; ++r) int4_group_bytes<In>(src + r * cols, len, stored[r], bytes[r]);
    // Word k of a row is its bytes 4k..4k+3, little-endian: q[o, 8k + i] in bits 4i..4i+3.
    for (int64_t k = 0; k < len / 8; ++k) {
      int32_t* dst = qweight + (c0 / 8 + k) * rows + o_begin;
      for (int64_t r = 0; r < nr; ++r) dst[r] = static_cast<int32_t>(le_word(&bytes[r][4 * k]));
    }
  }
  return first_overflow;
}

}  // namespace

extern "C" mq_status mq_cpu_quantize_fp8(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                                         const float* scales, int32_t per_row, uint8_t* out) {
  const char* fn = "mq_cpu_quantize_fp8";
  MQ_KRETURN_IF_ERROR(check_quantize_fp8_args(fn, w, scales, out, rows, cols, per_row));
  return with_input(fn, dtype, [&](auto in) {
    using In = decltype(in);
    const auto* src = static_cast<const typename In::Raw*>(w);
    const int64_t n = rows * cols;
    const int64_t chunks = (n + kChunkElements - 1) / kChunkElements;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < chunks; ++k) {
      const int64_t begin = k * kChunkElements, end = std::min(begin + kChunkElements, n);
      fp8_unit<In>(src, cols, scales, per_row, begin, end, out);
    }
    return MQ_OK;
  });
}

extern "C" mq_status mq_cpu_quantize_nvfp4(const void* w, mq_dtype dtype, int64_t rows,
                                           int64_t cols, float scale2, uint8_t* packed,
                                           uint8_t* block_scales) {
  const char* fn = "mq_cpu_quantize_nvfp4";
  MQ_KRETURN_IF_ERROR(check_quantize_nvfp4_args(fn, w, packed, block_scales, rows, cols));
  MQ_KCHECK(num::is_finite_f(scale2) && scale2 > 0.0f,
            std::string(fn) + ": scale2 must be finite and positive, got " + float_text(scale2));
  return with_input(fn, dtype, [&](auto in) {
    using In = decltype(in);
    const auto* src = static_cast<const typename In::Raw*>(w);
    const int64_t num_blocks = rows * cols / num::kNvfp4Block;
    const int64_t blocks_per_chunk = kChunkElements / num::kNvfp4Block;
    const int64_t chunks = (num_blocks + blocks_per_chunk - 1) / blocks_per_chunk;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < chunks; ++k) {
      const int64_t b_begin = k * blocks_per_chunk;
      const int64_t b_end = std::min(b_begin + blocks_per_chunk, num_blocks);
      nvfp4_unit<In>(src, scale2, b_begin, b_end, packed, block_scales);
    }
    return MQ_OK;
  });
}

extern "C" mq_status mq_cpu_quantize_fp8_block(const void* w, mq_dtype dtype, int64_t rows,
                                               int64_t cols, uint8_t* out, float* tile_scales) {
  const char* fn = "mq_cpu_quantize_fp8_block";
  MQ_KRETURN_IF_ERROR(check_quantize_fp8_block_args(fn, w, out, tile_scales, rows, cols));
  return with_input(fn, dtype, [&](auto in) {
    using In = decltype(in);
    const auto* src = static_cast<const typename In::Raw*>(w);
    const int64_t tile = num::kFp8Tile;
    const int64_t tile_rows = (rows + tile - 1) / tile;
    const int64_t tile_cols = (cols + tile - 1) / tile;
    // Whole tile rows, or, when there are fewer than 4 per thread, column groups splitting
    // them into about that many units.
    const int64_t want_units = 4 * static_cast<int64_t>(moequant::kernels::max_threads());
    const int64_t splits = std::min(tile_cols, (want_units + tile_rows - 1) / tile_rows);
    const int64_t per_unit = (tile_cols + splits - 1) / splits;
    const Fp8BlockUnits units{rows, cols, tile_cols, per_unit,
                              (tile_cols + per_unit - 1) / per_unit};
    const int64_t num_units = tile_rows * units.units_per_row;
#pragma omp parallel
    {
      int64_t u_begin = 0, u_end = 0;
      moequant::kernels::thread_range(num_units, &u_begin, &u_end);
      fp8_block_units<In>(src, units, u_begin, u_end, out, tile_scales);
    }
    return MQ_OK;
  });
}

extern "C" mq_status mq_cpu_quantize_int4(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                                          int32_t* qweight, uint16_t* scales, int32_t* qzeros,
                                          int32_t* g_idx) {
  const char* fn = "mq_cpu_quantize_int4";
  MQ_KRETURN_IF_ERROR(check_quantize_int4_args(fn, w, qweight, scales, qzeros, g_idx, rows, cols));
  const int64_t group = num::kInt4Group;
  const int64_t groups = (cols + group - 1) / group;
  const int64_t num_units = rows * groups;  // unit u: row u / groups, group u % groups
  int64_t first_overflow = num_units;       // smallest failing unit, so the report is stable
  const mq_status status = with_input(fn, dtype, [&](auto in) {
    using In = decltype(in);
    const auto* src = static_cast<const typename In::Raw*>(w);
    // Bands of up to 64 rows: qweight[c/8, band] is up to 256 contiguous bytes, written by one
    // thread.
    const int64_t band = moequant::kernels::int4_band_rows(rows);
    const int64_t bands = (rows + band - 1) / band;
#pragma omp parallel for schedule(static) reduction(min : first_overflow)
    for (int64_t b = 0; b < bands; ++b) {
      const int64_t o_begin = b * band, o_end = std::min(o_begin + band, rows);
      first_overflow =
          std::min(first_overflow, int4_unit<In>(src, rows, cols, o_begin, o_end, qweight, scales));
    }
    return MQ_OK;
  });
  if (status != MQ_OK) return status;
  if (first_overflow < num_units) {
    const int64_t o = first_overflow / groups, g = first_overflow % groups;
    const int64_t c0 = g * group, c1 = std::min(c0 + group, cols);
    return with_reader(fn, w, dtype, [&](auto read) {
      const float amax = range_amax(read, o * cols + c0, o * cols + c1);
      return set_error(MQ_ERR_RANGE,
                       std::string(fn) + ": the scale of row " + std::to_string(o) + ", group " +
                           std::to_string(g) + " (group amax " + float_text(amax) +
                           " / 7 = " + float_text(int4_scale_from_amax(amax)) +
                           ") does not fit float16 (max 65504); matrix " + shape_text(rows, cols));
    });
  }
  const int64_t num_zero_words = groups * (rows / 8);
  for (int64_t i = 0; i < num_zero_words; ++i) qzeros[i] = static_cast<int32_t>(kInt4ZeroNibbles);
  for (int64_t i = 0; i < cols; ++i) g_idx[i] = static_cast<int32_t>(i / group);
  return MQ_OK;
}
