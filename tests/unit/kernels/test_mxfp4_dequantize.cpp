// MXFP4 source reading (GPT-OSS releases): mq_cpu_dequantize_mxfp4_bf16 against an independent
// reference (the e2m1 magnitude times std::ldexp in double, rounded to bf16 by its bits only where
// exact) over every code and every scale byte, and its argument checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "moequant/kernels/kernels.h"

namespace {

const double kE2m1[8] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0};

// The bf16 bits of v when v is a bf16 value (the lower half of its float32 is zero), or of +-inf
// beyond bf16's range; -1 otherwise.
int bf16_bits_of(double v) {
  const float f = static_cast<float>(v);
  if (std::isinf(f) || std::fabs(v) > 3.3895313892515355e38) return v < 0 ? 0xff80 : 0x7f80;
  if (static_cast<double>(f) != v) return -1;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0xffffu) != 0) return -1;
  return static_cast<int>(u >> 16);
}

TEST(Mxfp4Dequantize, EveryCodeUnderEveryScaleIsExact) {
  // One row per scale byte 0..254, 32 elements: codes 0..15 twice (low nibble the even element).
  const int64_t rows = 255, cols = 32;
  std::vector<uint8_t> blocks(rows * cols / 2), scales(rows);
  for (int64_t r = 0; r < rows; ++r) {
    scales[r] = static_cast<uint8_t>(r);
    for (int k = 0; k < 16; ++k) {
      const uint8_t lo = static_cast<uint8_t>((2 * k) % 16),
                    hi = static_cast<uint8_t>((2 * k + 1) % 16);
      blocks[r * 16 + k] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
  std::vector<uint16_t> out(rows * cols, 0xdead);
  ASSERT_EQ(MQ_OK,
            mq_cpu_dequantize_mxfp4_bf16(blocks.data(), scales.data(), rows, cols, out.data()))
      << mq_last_error();
  int subnormals = 0, infinities = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int code = static_cast<int>(c % 16);
      const double mag = std::ldexp(kE2m1[code & 7], static_cast<int>(r) - 127);
      const double v = (code & 8) ? -mag : mag;
      int want = bf16_bits_of(v);
      if (code == 8) want = 0x8000;  // -0.0 keeps its sign
      ASSERT_GE(want, 0) << "the reference value " << v << " is not a bf16 value";
      ASSERT_EQ(want, out[r * cols + c]) << "scale " << r << " code " << code;
      if (mag > 0 && mag < std::ldexp(1.0, -126)) ++subnormals;
      if (want == 0x7f80 || want == 0xff80) ++infinities;
    }
  EXPECT_GT(subnormals, 0);  // the smallest scales reach bf16 subnormals
  EXPECT_GT(infinities, 0);  // and the largest overflow
}

// Every byte (both nibbles at once, as the kernel's table reads them) under every scale.
TEST(Mxfp4Dequantize, EveryByteUnderEveryScale) {
  const int64_t rows = 255, cols = 512;  // 256 bytes a row: byte k holds k
  std::vector<uint8_t> blocks(rows * cols / 2), scales(rows * cols / 32);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols / 2; ++k) blocks[r * cols / 2 + k] = static_cast<uint8_t>(k);
    for (int64_t b = 0; b < cols / 32; ++b) scales[r * cols / 32 + b] = static_cast<uint8_t>(r);
  }
  std::vector<uint16_t> out(rows * cols, 0xdead);
  ASSERT_EQ(MQ_OK,
            mq_cpu_dequantize_mxfp4_bf16(blocks.data(), scales.data(), rows, cols, out.data()))
      << mq_last_error();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int byte = static_cast<int>(c / 2);
      const int code = (c % 2 == 0) ? (byte & 15) : (byte >> 4);
      const double mag = std::ldexp(kE2m1[code & 7], static_cast<int>(r) - 127);
      int want = bf16_bits_of((code & 8) ? -mag : mag);
      if (code == 8) want = 0x8000;
      ASSERT_EQ(want, out[r * cols + c]) << "scale " << r << " byte " << byte << " element " << c;
    }
}

TEST(Mxfp4Dequantize, ScaleNanAndBadArguments) {
  std::vector<uint8_t> blocks(16, 0x21), scales(1, 255);
  std::vector<uint16_t> out(32);
  ASSERT_EQ(MQ_OK, mq_cpu_dequantize_mxfp4_bf16(blocks.data(), scales.data(), 1, 32, out.data()));
  EXPECT_EQ(0x7fc0, out[0]);  // e8m0 255 is NaN
  EXPECT_NE(MQ_OK, mq_cpu_dequantize_mxfp4_bf16(blocks.data(), scales.data(), 1, 16, out.data()));
  EXPECT_NE(std::string(mq_last_error()).find("mq_cpu_dequantize_mxfp4_bf16"), std::string::npos);
  EXPECT_NE(MQ_OK, mq_cpu_dequantize_mxfp4_bf16(nullptr, scales.data(), 1, 32, out.data()));
}

// mq_cpu_mxfp4_amax against the decoder on a [rows, 2 * nb] matrix read as every other row
// (pitch 2 * nb) and as the first nb blocks of each row (pitch > nblk); NaN scales and bad
// arguments.
TEST(Mxfp4Amax, EqualsTheDecodedMaxUnderPitches) {
  const int64_t rows = 6, nb = 3, cols = 2 * nb * 32;
  std::vector<uint8_t> blocks(rows * cols / 2), scales(rows * cols / 32);
  uint32_t x = 7;
  for (uint8_t& b : blocks) b = static_cast<uint8_t>((x = x * 1103515245u + 12345u) >> 16);
  for (uint8_t& s : scales)
    s = static_cast<uint8_t>(115 + ((x = x * 1103515245u + 12345u) >> 16) % 20);
  std::vector<uint16_t> out(rows * cols);
  ASSERT_EQ(MQ_OK,
            mq_cpu_dequantize_mxfp4_bf16(blocks.data(), scales.data(), rows, cols, out.data()));
  // max |bf16| over rows r0, r0 + step, ... and columns [0, ncols).
  auto decoded = [&](int64_t r0, int64_t step, int64_t ncols) {
    float m = 0;
    for (int64_t r = r0; r < rows; r += step)
      for (int64_t c = 0; c < ncols; ++c) {
        const uint32_t bits = static_cast<uint32_t>(out[r * cols + c] & 0x7fffu) << 16;
        float f;
        std::memcpy(&f, &bits, sizeof(f));
        m = std::max(m, f);
      }
    return m;
  };
  float a = -1;
  ASSERT_EQ(MQ_OK, mq_cpu_mxfp4_amax(blocks.data(), scales.data(), rows, 2 * nb, 2 * nb, &a));
  EXPECT_EQ(decoded(0, 1, cols), a);
  const int64_t row_bytes = 2 * nb * 16;  // odd rows (the up rows of an interleaved gate_up)
  ASSERT_EQ(MQ_OK, mq_cpu_mxfp4_amax(blocks.data() + row_bytes, scales.data() + 2 * nb, rows / 2,
                                     2 * nb, 4 * nb, &a));
  EXPECT_EQ(decoded(1, 2, cols), a);
  ASSERT_EQ(MQ_OK, mq_cpu_mxfp4_amax(blocks.data(), scales.data(), rows, nb, 2 * nb, &a));
  EXPECT_EQ(decoded(0, 1, cols / 2), a);
  scales[2 * nb + 1] = 255;  // a NaN scale in a row read
  ASSERT_EQ(MQ_OK, mq_cpu_mxfp4_amax(blocks.data(), scales.data(), rows, 2 * nb, 2 * nb, &a));
  EXPECT_TRUE(std::isnan(a));
  EXPECT_NE(MQ_OK, mq_cpu_mxfp4_amax(blocks.data(), scales.data(), rows, 2 * nb, nb, &a));
  EXPECT_NE(std::string(mq_last_error()).find("pitch 3 is below"), std::string::npos)
      << mq_last_error();
  EXPECT_NE(MQ_OK, mq_cpu_mxfp4_amax(blocks.data(), nullptr, rows, nb, nb, &a));
  EXPECT_NE(MQ_OK, mq_cpu_mxfp4_amax(blocks.data(), scales.data(), 0, nb, nb, &a));
}

// mq_cpu_quantize_nvfp4_exact: blocks of e2m1 codes times 2^g (random codes, several g) come back
// exactly through mq_cpu_dequantize_nvfp4; a block whose scale e4m3 cannot hold (2^g / scale2
// below 2^-9) and a block of values on no e2m1 grid take mq_cpu_quantize_nvfp4's bytes and are
// counted; scale2 must be a power of two.
TEST(Nvfp4Exact, KeepsE2m1CodesAndCountsTheRest) {
  const int64_t rows = 4, cols = 64;  // 16 blocks
  std::vector<uint16_t> w(rows * cols);
  uint32_t x = 11;
  auto next = [&] { return (x = x * 1103515245u + 12345u) >> 16; };
  const float mags[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (int64_t b = 0; b < rows * cols / 16; ++b) {
    const int g = static_cast<int>(b % 5) - 3;  // 2^-3 .. 2^1
    for (int i = 0; i < 16; ++i) {
      const float v = mags[next() % 8] * std::ldexp(1.0f, g) * ((next() & 1) ? -1.0f : 1.0f);
      uint32_t bits;
      std::memcpy(&bits, &v, sizeof(bits));
      w[b * 16 + i] = static_cast<uint16_t>(bits >> 16);
    }
  }
  for (int i = 0; i < 16; ++i) w[3 * 16 + i] = static_cast<uint16_t>(0x3f80 | (i + 1));  // 1.0078..
  for (int i = 0; i < 16; ++i) w[5 * 16 + i] = i % 2 ? 0x2000 : 0;  // 2^-63: far below the rest
  const float scale2 = 0.0625f;
  std::vector<uint8_t> packed(rows * cols / 2), scales(rows * cols / 16);
  int64_t requantized = -1;
  ASSERT_EQ(MQ_OK, mq_cpu_quantize_nvfp4_exact(w.data(), rows, cols, scale2, packed.data(),
                                               scales.data(), &requantized))
      << mq_last_error();
  EXPECT_EQ(2, requantized);
  std::vector<float> back(rows * cols);
  ASSERT_EQ(MQ_OK,
            mq_cpu_dequantize_nvfp4(packed.data(), scales.data(), scale2, rows, cols, back.data()));
  std::vector<uint8_t> ref_packed(rows * cols / 2), ref_scales(rows * cols / 16);
  ASSERT_EQ(MQ_OK, mq_cpu_quantize_nvfp4(w.data(), MQ_DTYPE_BF16, rows, cols, scale2,
                                         ref_packed.data(), ref_scales.data()));
  for (int64_t b = 0; b < rows * cols / 16; ++b) {
    if (b == 3 || b == 5) {  // the ordinary rule's bytes
      EXPECT_EQ(ref_scales[b], scales[b]) << b;
      for (int j = 0; j < 8; ++j) EXPECT_EQ(ref_packed[b * 8 + j], packed[b * 8 + j]) << b;
      continue;
    }
    for (int i = 0; i < 16; ++i) {
      const uint32_t bits = static_cast<uint32_t>(w[b * 16 + i]) << 16;
      float v;
      std::memcpy(&v, &bits, sizeof(v));
      EXPECT_EQ(v, back[b * 16 + i]) << "block " << b << " element " << i;
    }
  }
  EXPECT_NE(MQ_OK, mq_cpu_quantize_nvfp4_exact(w.data(), rows, cols, 0.1f, packed.data(),
                                               scales.data(), &requantized));
  EXPECT_NE(std::string(mq_last_error()).find("power of two"), std::string::npos);
}

}  // namespace
