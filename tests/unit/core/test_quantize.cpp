// The at::Tensor quantize glue. The kernel bytes themselves are
// checked bit-exactly against reference loops in tests/unit/kernels; here the glue's shapes,
// dtypes, names and errors are checked, plus bytes against a brute-force e4m3 reference.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "moequant/common/error.h"
#include "moequant/core/quantize.h"

namespace moequant {
namespace {

// Brute force: the e4m3fn code whose value is nearest to x (ties to the even code), saturating.
uint8_t e4m3_reference(float x) {
  float best_err = INFINITY;
  int best = 0;
  for (int c = 0; c < 127; ++c) {  // 0x7f is NaN
    const int e = (c >> 3) & 15, m = c & 7;
    const float v = e == 0 ? m * std::ldexp(1.0f, -9) : (1 + m / 8.0f) * std::ldexp(1.0f, e - 7);
    const float err = std::fabs(std::fabs(x) - v);
    if (err < best_err || (err == best_err && (c & 1) == 0)) best_err = err, best = c;
  }
  return static_cast<uint8_t>(best | (std::signbit(x) ? 0x80 : 0));
}

TEST(QuantizeGlue, Fp8BytesMatchBruteForceReference) {
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    at::manual_seed(1);
    at::Tensor w = (at::randn({5, 37}) * 3).to(dtype);
    const float amax = w.abs().max().item<float>();
    auto stored = quantize_weight(w, QuantFormat::kFP8, {amax}, "w");
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored[0].suffix, "weight");
    EXPECT_EQ(stored[0].dtype, DType::kF8E4M3);
    EXPECT_EQ(stored[0].shape, (std::vector<int64_t>{5, 37}));
    EXPECT_EQ(stored[1].suffix, "weight_scale");
    EXPECT_TRUE(stored[1].shape.empty());
    const float scale = amax / 448.0f;
    EXPECT_EQ(stored[1].data.item<float>(), scale);
    const at::Tensor wf = w.to(at::kFloat).contiguous();
    const uint8_t* q = stored[0].data.data_ptr<uint8_t>();
    for (int64_t i = 0; i < wf.numel(); ++i)
      ASSERT_EQ(q[i], e4m3_reference(wf.data_ptr<float>()[i] / scale)) << "element " << i;
  }
}

TEST(QuantizeGlue, ShapesAndNamesOfEveryFormat) {
  at::Tensor w = at::randn({16, 256}).to(at::kBFloat16);
  const float amax = w.abs().max().to(at::kFloat).item<float>();
  auto nv = quantize_weight(w, QuantFormat::kNVFP4, {amax}, "w");
  EXPECT_EQ(find_stored(nv, "weight", "w").shape, (std::vector<int64_t>{16, 128}));
  EXPECT_EQ(find_stored(nv, "weight_scale", "w").dtype, DType::kF8E4M3);
  EXPECT_EQ(find_stored(nv, "weight_scale", "w").shape, (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(find_stored(nv, "weight_scale_2", "w").data.item<float>(), amax / (6.0f * 448.0f));
  auto fb = quantize_weight(w, QuantFormat::kFP8Block, {}, "w");
  EXPECT_EQ(find_stored(fb, "weight_scale_inv", "w").shape, (std::vector<int64_t>{1, 2}));
  auto i4 = quantize_weight(w, QuantFormat::kINT4, {}, "w");
  EXPECT_EQ(find_stored(i4, "qweight", "w").shape, (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(find_stored(i4, "scales", "w").dtype, DType::kF16);
  EXPECT_EQ(find_stored(i4, "scales", "w").shape, (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(find_stored(i4, "qzeros", "w").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(find_stored(i4, "g_idx", "w").shape, (std::vector<int64_t>{256}));
  auto none = quantize_weight(w, QuantFormat::kNone, {}, "w");
  EXPECT_TRUE(at::equal(none[0].data, w));
}

TEST(QuantizeGlue, DequantizeIsCloseForEveryFormat) {
  at::manual_seed(3);
  at::Tensor w = at::randn({64, 384});
  const float amax = w.abs().max().item<float>();
  struct Case {
    QuantFormat f;
    double tol;
  };
  for (Case c : {Case{QuantFormat::kFP8, 0.05}, Case{QuantFormat::kNVFP4, 0.2},
                 Case{QuantFormat::kFP8Block, 0.05}, Case{QuantFormat::kINT4, 0.2}}) {
    auto stored = quantize_weight(w, c.f, {amax}, "w");
    at::Tensor back = dequantize_weight(stored, c.f, 64, 384, "w");
    const double rel = ((back - w).norm() / w.norm()).item<double>();
    EXPECT_LT(rel, c.tol) << format_name(c.f);
    EXPECT_GT(rel, 0.0) << format_name(c.f);
  }
}

TEST(QuantizeGlue, BadInputNamesTheTensor) {
  auto expect_error = [](auto fn, const std::string& needle) {
    try {
      fn();
      FAIL() << "expected an error containing " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(
      [] {
        quantize_weight(at::randn({4, 20}), QuantFormat::kNVFP4, {1.0f}, "x.w1");
      },
      "x.w1");
  expect_error(
      [] {
        quantize_weight(at::randn({4, 20}), QuantFormat::kNVFP4, {1.0f}, "x.w1");
      },
      "in % 16");
  expect_error([] { quantize_weight(at::randn({6, 16}), QuantFormat::kINT4, {}, "x.w2"); }, "x.w2");
  expect_error([] { quantize_weight(at::randn({8}), QuantFormat::kFP8, {1.0f}, "x.w3"); }, "2-D");
  at::Tensor bad = at::ones({8, 16});
  bad[3][5] = NAN;
  expect_error([&] { quantize_weight(bad, QuantFormat::kFP8Block, {}, "x.nan"); }, "x.nan");
  expect_error([&] { quantize_weight(bad, QuantFormat::kINT4, {}, "x.nan"); }, "NaN");
  expect_error(
      [] {
        quantize_weight(at::randn({4, 16}).to(at::kDouble), QuantFormat::kFP8, {1.0f}, "x.f64");
      },
      "x.f64");
}

}  // namespace
}  // namespace moequant
