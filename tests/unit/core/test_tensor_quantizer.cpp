// TensorQuantizer state: running amax per tensor and per channel, the uncalibrated state, and
// NaN/Inf errors naming the tensor and the quantizer.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "moequant/common/error.h"
#include "moequant/core/tensor_quantizer.h"

namespace moequant {
namespace {

TEST(TensorQuantizer, ObserveIsRunningMaxAndStartsUncalibrated) {
  TensorQuantizer q(QuantFormat::kFP8);
  q.set_name("layer.weight_quantizer");
  EXPECT_FALSE(q.is_calibrated());
  EXPECT_THROW(q.amax(), Error);
  q.observe(at::tensor({1.0f, -3.0f, 2.0f}));
  EXPECT_TRUE(q.is_calibrated());
  EXPECT_EQ(q.amax_scalar(), 3.0f);
  q.observe(at::tensor({-0.5f, 1.5f}));
  EXPECT_EQ(q.amax_scalar(), 3.0f);
  q.observe(at::tensor({7.25f}).to(at::kBFloat16));
  EXPECT_EQ(q.amax_scalar(), 7.25f);
}

TEST(TensorQuantizer, PerChannelKeepsOneValuePerRow) {
  TensorQuantizer q(QuantFormat::kFP8, AmaxAxis::kPerChannel);
  q.observe(at::tensor({1.0f, -4.0f, 0.5f, 0.25f}).reshape({2, 2}));
  ASSERT_EQ(q.amax().size(), 2u);
  EXPECT_EQ(q.amax()[0], 4.0f);
  EXPECT_EQ(q.amax()[1], 0.5f);
}

TEST(TensorQuantizer, NanIsAnErrorNamingTheTensorAndQuantizer) {
  TensorQuantizer q(QuantFormat::kFP8);
  q.set_name("experts.linear_fc1.input_quantizer");
  try {
    q.observe(at::tensor({1.0f, NAN}), "my_input");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my_input"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("experts.linear_fc1.input_quantizer"), std::string::npos);
  }
  EXPECT_THROW(q.observe(at::tensor({INFINITY})), Error);
}

}  // namespace
}  // namespace moequant
