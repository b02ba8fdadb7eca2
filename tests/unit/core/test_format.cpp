// The format descriptors (core/format.h): names, the tensors each stores for a weight with the
// shapes and dtypes of docs/formats.md, the shape rules, recognizing a stored module, and the
// scheme names a checkpoint declares.
#include <gtest/gtest.h>

#include "moequant/common/error.h"
#include "moequant/core/format.h"

namespace moequant {
namespace {

struct Expected {
  std::string suffix;
  DType dtype;
  std::vector<int64_t> shape;
};

void expect_layout(QuantFormat f, int64_t rows, int64_t cols, const std::vector<Expected>& want) {
  const std::vector<StoredTensorSpec> got =
      format_descriptor(f).stored_tensors(rows, cols, DType::kBF16, "m.weight");
  ASSERT_EQ(got.size(), want.size()) << format_name(f);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].suffix, want[i].suffix) << format_name(f);
    EXPECT_EQ(got[i].dtype, want[i].dtype) << format_name(f) << " " << want[i].suffix;
    EXPECT_EQ(got[i].shape, want[i].shape) << format_name(f) << " " << want[i].suffix;
  }
}

TEST(Format, NamesRoundTripAndUnknownListsTheValidOnes) {
  for (const FormatDescriptor* d : all_formats()) {
    EXPECT_EQ(format_from_name(d->name), d->id);
    EXPECT_EQ(&format_descriptor(d->id), d);
  }
  try {
    format_from_name("mxfp4");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("mxfp4"), std::string::npos) << msg;
    EXPECT_NE(msg.find("nvfp4"), std::string::npos) << msg;
  }
}

TEST(Format, LayoutsAreTheContracts) {
  // A [200, 272] weight: edge tiles and groups are partial (272 = 2 * 128 + 16).
  expect_layout(QuantFormat::kNone, 200, 272, {{"weight", DType::kBF16, {200, 272}}});
  expect_layout(QuantFormat::kFP8, 200, 272,
                {{"weight", DType::kF8E4M3, {200, 272}}, {"weight_scale", DType::kF32, {}}});
  expect_layout(QuantFormat::kNVFP4, 200, 272,
                {{"weight", DType::kU8, {200, 136}},
                 {"weight_scale", DType::kF8E4M3, {200, 17}},
                 {"weight_scale_2", DType::kF32, {}}});
  expect_layout(
      QuantFormat::kFP8Block, 200, 272,
      {{"weight", DType::kF8E4M3, {200, 272}}, {"weight_scale_inv", DType::kF32, {2, 3}}});
  expect_layout(QuantFormat::kINT4, 200, 272,
                {{"qweight", DType::kI32, {34, 200}},
                 {"qzeros", DType::kI32, {3, 25}},
                 {"scales", DType::kF16, {3, 200}},
                 {"g_idx", DType::kI32, {272}}});
}

TEST(Format, ShapeRulesNameTheWeight) {
  auto error_of = [](QuantFormat f, int64_t rows, int64_t cols) {
    try {
      format_descriptor(f).stored_tensors(rows, cols, DType::kBF16, "layer.3.w");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  EXPECT_NE(error_of(QuantFormat::kNVFP4, 8, 24).find("layer.3.w: nvfp4 needs in % 16"),
            std::string::npos);
  EXPECT_NE(error_of(QuantFormat::kINT4, 12, 16).find("layer.3.w: int4 needs out % 8"),
            std::string::npos);
  EXPECT_EQ(error_of(QuantFormat::kFP8Block, 7, 9), "<no error>");
}

TEST(Format, StoredModuleIsRecognizedByItsSuffixes) {
  for (const FormatDescriptor* d : all_formats()) {
    std::vector<std::string> present;
    for (const StoredTensorSpec& s : d->stored_tensors(16, 128, DType::kBF16, "m"))
      present.push_back(s.suffix);
    const QuantFormat seen = stored_format([&](const std::string& s) {
      return std::find(present.begin(), present.end(), s) != present.end();
    });
    EXPECT_EQ(seen, d->id) << d->name;
  }
}

TEST(Format, SchemesAndScalesAsDeclared) {
  const FormatDescriptor& fp8 = format_descriptor(QuantFormat::kFP8);
  EXPECT_EQ(fp8.weights_only.quant_method, "fp8");
  EXPECT_EQ(fp8.with_activations.modelopt_algo, "FP8");
  EXPECT_EQ(fp8.input_scale_divisor, 448.0f);
  const FormatDescriptor& nvfp4 = format_descriptor(QuantFormat::kNVFP4);
  EXPECT_EQ(nvfp4.weights_only.modelopt_algo, "W4A16_NVFP4");
  EXPECT_EQ(nvfp4.with_activations.modelopt_algo, "NVFP4");
  EXPECT_EQ(nvfp4.input_scale_divisor, 6.0f * 448.0f);
  EXPECT_EQ(nvfp4.gate_up_shared_scalars,
            (std::vector<std::string>{"weight_scale_2", "input_scale"}));
  for (QuantFormat f : {QuantFormat::kFP8Block, QuantFormat::kINT4}) {
    EXPECT_FALSE(format_descriptor(f).has_static_activations());
    EXPECT_TRUE(format_descriptor(f).gate_up_shared_scalars.empty());
  }
  EXPECT_TRUE(is_scale_suffix("weight_scale_inv"));
  EXPECT_TRUE(is_scale_suffix("scales"));
  EXPECT_TRUE(is_scale_suffix("input_scale"));
  EXPECT_FALSE(is_scale_suffix("qzeros"));
  EXPECT_FALSE(is_scale_suffix("weight"));
  EXPECT_EQ(format_descriptor(QuantFormat::kINT4).weight_suffix(), "qweight");
  EXPECT_EQ(format_descriptor(QuantFormat::kNVFP4).weight_suffix(), "weight");
}

}  // namespace
}  // namespace moequant
