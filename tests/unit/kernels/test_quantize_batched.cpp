// mq_cpu_quantize_batched against the per-matrix CPU quantizers, byte for byte: expert stacks and
// mixed awkward shapes (including shifted input and output pointers) in one call, for every
// format and input dtype, on both of its schedules (few items one after another, many items in
// parallel); and its argument contract: errors name the failing item.
#include <gtest/gtest.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"

namespace {

namespace num = moequant::num;

const mq_dtype kDtypes[] = {MQ_DTYPE_BF16, MQ_DTYPE_F16, MQ_DTYPE_F32};
const mq_format kFormats[] = {MQ_FORMAT_FP8, MQ_FORMAT_NVFP4, MQ_FORMAT_FP8_BLOCK, MQ_FORMAT_INT4};

const char* format_name(mq_format f) {
  return f == MQ_FORMAT_FP8
             ? "fp8"
             : (f == MQ_FORMAT_NVFP4 ? "nvfp4" : (f == MQ_FORMAT_FP8_BLOCK ? "fp8_block" : "int4"));
}
const char* dtype_name(mq_dtype d) {
  return d == MQ_DTYPE_BF16 ? "bf16" : (d == MQ_DTYPE_F16 ? "f16" : "f32");
}
int64_t elem_size(mq_dtype d) {
  return d == MQ_DTYPE_F32 ? 4 : 2;
}

struct Shape {
  int64_t rows, cols;
};

// Output sizes in bytes of one item: out, scales, qzeros, g_idx.
struct Sizes {
  size_t out, scales, qzeros, g_idx;
};
Sizes sizes_of(mq_format f, int64_t rows, int64_t cols) {
  const size_t n = static_cast<size_t>(rows * cols);
  const size_t tiles = static_cast<size_t>(((rows + 127) / 128) * ((cols + 127) / 128));
  const size_t groups = static_cast<size_t>((cols + 127) / 128);
  switch (f) {
    case MQ_FORMAT_FP8:
      return {n, 0, 0, 0};
    case MQ_FORMAT_NVFP4:
      return {n / 2, n / 16, 0, 0};
    case MQ_FORMAT_FP8_BLOCK:
      return {n, tiles * 4, 0, 0};
    case MQ_FORMAT_INT4:
      return {n / 2, groups * static_cast<size_t>(rows) * 2, groups * static_cast<size_t>(rows) / 2,
              static_cast<size_t>(cols) * 4};
  }
  return {0, 0, 0, 0};
}

// One matrix with its input bytes and two sets of outputs (per-matrix call, batched call). Buffers
// carry `shift` bytes of slack in front so pointers can be moved off their natural alignment.
struct Matrix {
  int64_t rows = 0, cols = 0;
  size_t in_shift = 0, out_shift = 0;
  float scale = 1.0f;
  std::vector<unsigned char> w;
  std::vector<unsigned char> out[2], scales[2], qzeros[2], g_idx[2];

  const void* wp() const { return w.data() + in_shift; }
  mq_quant_item item(int set) {
    return mq_quant_item{wp(),
                         rows,
                         cols,
                         scale,
                         out[set].data() + out_shift,
                         scales[set].data(),
                         reinterpret_cast<int32_t*>(qzeros[set].data()),
                         reinterpret_cast<int32_t*>(g_idx[set].data())};
  }
};

// Weights over many binades per row, some zero rows, -0.0 here and there.
Matrix make_matrix(mq_format f, mq_dtype d, Shape s, size_t in_shift, size_t out_shift,
                   std::mt19937& rng) {
  Matrix m;
  m.rows = s.rows;
  m.cols = s.cols;
  m.in_shift = in_shift;
  m.out_shift = out_shift;
  const int64_t es = elem_size(d), n = s.rows * s.cols;
  m.w.assign(static_cast<size_t>(n * es) + in_shift, 0);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-10, 6);
  float amax = 0.0f;
  for (int64_t r = 0; r < s.rows; ++r) {
    const float scale = std::ldexp(1.0f, exponent(rng));
    const bool zero_row = r % 13 == 5;
    for (int64_t c = 0; c < s.cols; ++c) {
      float x = zero_row ? 0.0f : normal(rng) * scale;
      if (rng() % 64 == 0) x = -0.0f;
      unsigned char* dst = m.w.data() + in_shift + static_cast<size_t>((r * s.cols + c) * es);
      if (d == MQ_DTYPE_F32) {
        memcpy(dst, &x, 4);
      } else {
        bool overflow = false;
        const uint16_t h = d == MQ_DTYPE_BF16 ? static_cast<uint16_t>(num::float_bits(x) >> 16)
                                              : num::float_to_half(x, &overflow);
        memcpy(dst, &h, 2);
        x = d == MQ_DTYPE_BF16 ? num::bf16_to_float(h) : num::half_to_float(h);
      }
      amax = std::max(amax, std::fabs(x));
    }
  }
  m.scale =
      f == MQ_FORMAT_NVFP4 ? num::nvfp4_scale2_from_amax(amax) : num::fp8_scale_from_amax(amax);
  const Sizes z = sizes_of(f, s.rows, s.cols);
  for (int set = 0; set < 2; ++set) {
    // different fill per set: a byte neither call writes shows up as a difference
    m.out[set].assign(z.out + out_shift, static_cast<unsigned char>(0xa5 + set));
    m.scales[set].assign(z.scales, static_cast<unsigned char>(0x5a + set));
    m.qzeros[set].assign(z.qzeros, static_cast<unsigned char>(0x3c + set));
    m.g_idx[set].assign(z.g_idx, static_cast<unsigned char>(0xc3 + set));
  }
  return m;
}

mq_status quantize_one(mq_format f, mq_dtype d, const mq_quant_item& it) {
  switch (f) {
    case MQ_FORMAT_FP8:
      return mq_cpu_quantize_fp8(it.w, d, it.rows, it.cols, &it.scale, 0,
                                 static_cast<uint8_t*>(it.out));
    case MQ_FORMAT_NVFP4:
      return mq_cpu_quantize_nvfp4(it.w, d, it.rows, it.cols, it.scale,
                                   static_cast<uint8_t*>(it.out), static_cast<uint8_t*>(it.scales));
    case MQ_FORMAT_FP8_BLOCK:
      return mq_cpu_quantize_fp8_block(it.w, d, it.rows, it.cols, static_cast<uint8_t*>(it.out),
                                       static_cast<float*>(it.scales));
    case MQ_FORMAT_INT4:
      return mq_cpu_quantize_int4(it.w, d, it.rows, it.cols, static_cast<int32_t*>(it.out),
                                  static_cast<uint16_t*>(it.scales), it.qzeros, it.g_idx);
  }
  return MQ_ERR_INVALID;
}

void expect_bytes(const std::vector<unsigned char>& got, const std::vector<unsigned char>& want,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], want[i]) << what << ": first difference at byte " << i;
  }
}

// Per-matrix calls into set 0, one batched call into set 1, then every output compared.
void check_batch(mq_format f, mq_dtype d, const std::vector<Shape>& shapes, bool shift_pointers,
                 uint32_t seed) {
  SCOPED_TRACE(std::string(format_name(f)) + " " + dtype_name(d) + " " +
               std::to_string(shapes.size()) + " items" + (shift_pointers ? ", shifted" : ""));
  std::mt19937 rng(seed);
  std::vector<Matrix> ms;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const size_t in_shift = shift_pointers && i % 2 == 1 ? static_cast<size_t>(elem_size(d)) : 0;
    // int4 writes int32 words and fp8_block floats: only byte outputs may sit off their alignment
    const size_t out_shift =
        shift_pointers && i % 3 == 2 && (f == MQ_FORMAT_FP8 || f == MQ_FORMAT_NVFP4) ? 1 : 0;
    ms.push_back(make_matrix(f, d, shapes[i], in_shift, out_shift, rng));
  }
  std::vector<mq_quant_item> items;
  for (Matrix& m : ms) {
    ASSERT_EQ(quantize_one(f, d, m.item(0)), MQ_OK) << mq_last_error();
    items.push_back(m.item(1));
  }
  ASSERT_EQ(mq_cpu_quantize_batched(f, d, items.data(), static_cast<int32_t>(items.size())), MQ_OK)
      << mq_last_error();
  for (size_t i = 0; i < ms.size(); ++i) {
    const std::string what = "item " + std::to_string(i) + " [" + std::to_string(ms[i].rows) +
                             ", " + std::to_string(ms[i].cols) + "]";
    const size_t sh = ms[i].out_shift;
    expect_bytes(std::vector<unsigned char>(ms[i].out[1].begin() + sh, ms[i].out[1].end()),
                 std::vector<unsigned char>(ms[i].out[0].begin() + sh, ms[i].out[0].end()),
                 what + " out");
    for (size_t k = 0; k < sh; ++k)
      ASSERT_EQ(ms[i].out[1][k], 0xa6) << what << ": wrote before out";
    expect_bytes(ms[i].scales[1], ms[i].scales[0], what + " scales");
    expect_bytes(ms[i].qzeros[1], ms[i].qzeros[0], what + " qzeros");
    expect_bytes(ms[i].g_idx[1], ms[i].g_idx[0], what + " g_idx");
  }
}

// Awkward shapes each format accepts: single rows and columns, widths off the vector size, edge
// tiles, int4 group tails.
std::vector<Shape> awkward_shapes(mq_format f) {
  switch (f) {
    case MQ_FORMAT_FP8:
      return {{1, 1}, {7, 13}, {300, 7}, {1, 300}, {130, 300}, {64, 2048}};
    case MQ_FORMAT_NVFP4:
      return {{1, 16}, {7, 48}, {3, 1008}, {130, 304}, {1, 2064}, {256, 2048}};
    case MQ_FORMAT_FP8_BLOCK:
      return {{1, 1}, {5, 13}, {257, 129}, {130, 300}, {128, 128}, {1, 1000}};
    case MQ_FORMAT_INT4:
      return {{8, 8}, {8, 136}, {136, 304}, {16, 1032}, {264, 1000}, {8, 2048}};
  }
  return {};
}

// A small expert stack: gate and up [96, 256], down [256, 96] per expert.
std::vector<Shape> expert_stack(int experts) {
  std::vector<Shape> s;
  for (int e = 0; e < experts; ++e) {
    s.push_back({96, 256});
    s.push_back({96, 256});
    s.push_back({256, 96});
  }
  return s;
}

TEST(QuantizeBatched, ExpertStackEqualsPerMatrixCalls) {
  for (const mq_format f : kFormats) {
    for (const mq_dtype d : kDtypes) check_batch(f, d, expert_stack(4), false, 11);
  }
}

TEST(QuantizeBatched, AwkwardShapesAndShiftedPointersInOneBatch) {
  for (const mq_format f : kFormats) {
    for (const mq_dtype d : kDtypes) {
      check_batch(f, d, awkward_shapes(f), false, 21);
      check_batch(f, d, awkward_shapes(f), true, 22);
    }
  }
}

// Enough items for the parallel-over-items schedule, a single item, and two.
TEST(QuantizeBatched, ManyItemsOneItemAndTwo) {
  for (const mq_format f : kFormats) {
    std::vector<Shape> many;
    const std::vector<Shape> awk = awkward_shapes(f);
    for (int i = 0; i < 40; ++i) many.push_back(awk[static_cast<size_t>(i) % awk.size()]);
    check_batch(f, MQ_DTYPE_BF16, many, true, 31);
    check_batch(f, MQ_DTYPE_F16, {awk[2]}, false, 32);
    check_batch(f, MQ_DTYPE_F32, {awk[3], awk[0]}, true, 33);
  }
}

bool message_has(const std::string& s) {
  return std::string(mq_last_error()).find(s) != std::string::npos;
}

// Four valid [16, 256] bf16 items of format f (their buffers live in `ms`).
std::vector<mq_quant_item> valid_items(mq_format f, std::vector<Matrix>* ms) {
  std::mt19937 rng(41);
  ms->clear();
  for (int i = 0; i < 4; ++i) ms->push_back(make_matrix(f, MQ_DTYPE_BF16, {16, 256}, 0, 0, rng));
  std::vector<mq_quant_item> items;
  for (Matrix& m : *ms) items.push_back(m.item(1));
  return items;
}

TEST(QuantizeBatched, BadArgumentsNameTheItem) {
  std::vector<Matrix> ms;
  const mq_format f = MQ_FORMAT_INT4;
  const std::vector<mq_quant_item> items = valid_items(f, &ms);
  ASSERT_EQ(mq_cpu_quantize_batched(f, MQ_DTYPE_BF16, items.data(), 4), MQ_OK) << mq_last_error();

  EXPECT_EQ(mq_cpu_quantize_batched(f, MQ_DTYPE_BF16, items.data(), 0), MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("mq_cpu_quantize_batched") && message_has("must be > 0"))
      << mq_last_error();
  EXPECT_EQ(mq_cpu_quantize_batched(f, MQ_DTYPE_BF16, items.data(), -3), MQ_ERR_INVALID);
  EXPECT_EQ(mq_cpu_quantize_batched(f, MQ_DTYPE_BF16, nullptr, 4), MQ_ERR_INVALID);
  EXPECT_EQ(mq_cpu_quantize_batched(static_cast<mq_format>(9), MQ_DTYPE_BF16, items.data(), 4),
            MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("unknown format 9")) << mq_last_error();
  EXPECT_EQ(mq_cpu_quantize_batched(static_cast<mq_format>(0), MQ_DTYPE_BF16, items.data(), 4),
            MQ_ERR_INVALID);
  EXPECT_EQ(mq_cpu_quantize_batched(f, static_cast<mq_dtype>(7), items.data(), 4), MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("unknown dtype 7")) << mq_last_error();

  std::vector<mq_quant_item> bad = items;
  bad[2].g_idx = nullptr;
  EXPECT_EQ(mq_cpu_quantize_batched(f, MQ_DTYPE_BF16, bad.data(), 4), MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("item 2 (int4)") && message_has("g_idx")) << mq_last_error();
  bad = items;
  bad[3].rows = 12;  // int4 needs rows % 8 == 0
  EXPECT_EQ(mq_cpu_quantize_batched(f, MQ_DTYPE_BF16, bad.data(), 4), MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("item 3 (int4)") && message_has("rows must be a multiple of 8"))
      << mq_last_error();
  bad = items;
  bad[1].cols = 0;
  EXPECT_EQ(mq_cpu_quantize_batched(f, MQ_DTYPE_BF16, bad.data(), 4), MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("item 1 (int4)") && message_has("positive")) << mq_last_error();
  bad = items;
  bad[1].w = static_cast<const unsigned char*>(bad[1].w) + 1;  // off its element size
  EXPECT_EQ(mq_cpu_quantize_batched(f, MQ_DTYPE_BF16, bad.data(), 4), MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("item 1 (int4)") && message_has("aligned")) << mq_last_error();

  // nvfp4: cols % 16 and scale2 > 0 per item
  std::vector<mq_quant_item> nv = valid_items(MQ_FORMAT_NVFP4, &ms);
  EXPECT_EQ(mq_cpu_quantize_batched(MQ_FORMAT_NVFP4, MQ_DTYPE_BF16, nv.data(), 4), MQ_OK)
      << mq_last_error();
  const float scale2 = nv[2].scale;
  nv[2].scale = 0.0f;
  EXPECT_EQ(mq_cpu_quantize_batched(MQ_FORMAT_NVFP4, MQ_DTYPE_BF16, nv.data(), 4), MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("item 2 (nvfp4)") && message_has("scale")) << mq_last_error();
  nv[2].scale = NAN;
  EXPECT_EQ(mq_cpu_quantize_batched(MQ_FORMAT_NVFP4, MQ_DTYPE_BF16, nv.data(), 4), MQ_ERR_INVALID);
  nv[2].scale = scale2;
  nv[0].cols = 8;
  nv[0].rows = 32;
  EXPECT_EQ(mq_cpu_quantize_batched(MQ_FORMAT_NVFP4, MQ_DTYPE_BF16, nv.data(), 4), MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("item 0 (nvfp4)") && message_has("multiple of 16")) << mq_last_error();

  // fp8 needs no `scales` pointer, but `out`
  std::vector<mq_quant_item> f8 = valid_items(MQ_FORMAT_FP8, &ms);
  for (mq_quant_item& it : f8) it.scales = nullptr;
  EXPECT_EQ(mq_cpu_quantize_batched(MQ_FORMAT_FP8, MQ_DTYPE_BF16, f8.data(), 4), MQ_OK)
      << mq_last_error();
  f8[3].out = nullptr;
  EXPECT_EQ(mq_cpu_quantize_batched(MQ_FORMAT_FP8, MQ_DTYPE_BF16, f8.data(), 4), MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("item 3 (fp8)") && message_has("out")) << mq_last_error();

  std::vector<mq_quant_item> fb = valid_items(MQ_FORMAT_FP8_BLOCK, &ms);
  fb[0].scales = nullptr;
  EXPECT_EQ(mq_cpu_quantize_batched(MQ_FORMAT_FP8_BLOCK, MQ_DTYPE_BF16, fb.data(), 4),
            MQ_ERR_INVALID);
  EXPECT_TRUE(message_has("item 0 (fp8_block)") && message_has("tile_scales")) << mq_last_error();
}

// An fp16 scale overflow is MQ_ERR_RANGE naming the item, row and group (the first one, in item
// order, whichever thread met it).
TEST(QuantizeBatched, Int4OverflowNamesTheFirstFailingItem) {
  std::mt19937 rng(51);
  for (const int n : {3, 40}) {  // one after another, and in parallel over items
    std::vector<Matrix> ms;
    for (int i = 0; i < n; ++i) {
      ms.push_back(make_matrix(MQ_FORMAT_INT4, MQ_DTYPE_F32, {16, 256}, 0, 0, rng));
    }
    const float big = 1e6f, bigger = 2e6f;                                       // / 7 > 65504
    memcpy(ms[1].w.data() + static_cast<size_t>((9 * 256 + 200) * 4), &big, 4);  // row 9, group 1
    memcpy(ms[n - 1].w.data() + static_cast<size_t>((2 * 256 + 3) * 4), &bigger, 4);
    std::vector<mq_quant_item> items;
    for (Matrix& m : ms) items.push_back(m.item(1));
    EXPECT_EQ(mq_cpu_quantize_batched(MQ_FORMAT_INT4, MQ_DTYPE_F32, items.data(), n), MQ_ERR_RANGE);
    EXPECT_TRUE(message_has("item 1 (int4)") && message_has("row 9, group 1")) << mq_last_error();
  }
}

}  // namespace
