// The amax of an MXFP4 source read from its codes (core/mxfp4_source.h) against the amax of the
// bf16 tensor its blocks decode to: every scale byte, strided row selections (the gate or up rows
// of an interleaved fused tensor, a block range of down's columns), overflow to inf, bad input.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "moequant/common/error.h"
#include "moequant/core/mxfp4_source.h"

namespace moequant {
namespace {

float decoded_amax(const at::Tensor& blocks, const at::Tensor& scales) {
  return dequantize_mxfp4(blocks.contiguous(), scales.contiguous(), "t")
      .to(at::kFloat)
      .abs()
      .max()
      .item<float>();
}

TEST(Mxfp4Amax, EqualsTheDecodedAmaxOnEveryScale) {
  at::manual_seed(3);
  for (int s = 0; s < 255; s += 3) {  // one scale per matrix, random codes
    const at::Tensor blocks = at::randint(0, 256, {6, 4, 16}, at::kByte);
    const at::Tensor scales = at::full({6, 4}, s, at::kByte);
    const float want = decoded_amax(blocks, scales);
    EXPECT_EQ(want, mxfp4_amax(blocks, scales, "t")) << "scale " << s;  // inf == inf included
  }
  // Scales mixed within the matrix, codes of few distinct magnitudes (ties between blocks).
  for (int trial = 0; trial < 20; ++trial) {
    const at::Tensor blocks = at::randint(0, 4, {9, 5, 16}, at::kByte).mul_(17);
    const at::Tensor scales = at::randint(100, 140, {9, 5}, at::kByte);
    EXPECT_EQ(decoded_amax(blocks, scales), mxfp4_amax(blocks, scales, "t")) << trial;
  }
  const at::Tensor zeros = at::zeros({2, 3, 16}, at::kByte);
  EXPECT_EQ(0.0f, mxfp4_amax(zeros, at::full({2, 3}, 127, at::kByte), "t"));
  EXPECT_TRUE(std::isinf(mxfp4_amax(at::full({1, 1, 16}, 0x77, at::kByte),
                                    at::full({1, 1}, 254, at::kByte), "t")));  // 6 x 2^127
}

TEST(Mxfp4Amax, StridedRowsAndBlockRanges) {
  at::manual_seed(4);
  const at::Tensor blocks = at::randint(0, 256, {10, 6, 16}, at::kByte);  // [2I = 10, nb, 16]
  const at::Tensor scales = at::randint(110, 135, {10, 6}, at::kByte);
  // The odd rows (up, interleaved), blocks 2..4 (a down shard's columns).
  const at::Tensor b = blocks.slice(0, 1, 10, 2).slice(1, 2, 5),
                   s = scales.slice(0, 1, 10, 2).slice(1, 2, 5);
  EXPECT_EQ(decoded_amax(b, s), mxfp4_amax(b, s, "t"));
}

TEST(Mxfp4Amax, BadInputIsNamed) {
  const at::Tensor blocks = at::zeros({2, 3, 16}, at::kByte);
  auto message = [&](const at::Tensor& b, const at::Tensor& s) {
    try {
      mxfp4_amax(b, s, "experts.gate_up_proj_blocks[4]");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(blocks, at::full({2, 3}, 255, at::kByte)).find("scale 0 is 255, e8m0's NaN"),
            std::string::npos);
  EXPECT_NE(message(blocks, at::zeros({2, 4}, at::kByte)).find("experts.gate_up_proj_blocks[4]"),
            std::string::npos);
  EXPECT_NE(message(at::zeros({2, 3, 8}, at::kByte), at::zeros({2, 3}, at::kByte))
                .find("must be U8 [rows, cols/32, 16]"),
            std::string::npos);
}

}  // namespace
}  // namespace moequant
