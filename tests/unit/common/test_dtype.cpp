// Storage dtypes: sizes, the names safetensors uses, and errors that name the context.
#include <gtest/gtest.h>

#include "moequant/common/dtype.h"
#include "moequant/common/error.h"

namespace moequant {
namespace {

TEST(DType, EveryDtypeRoundTripsThroughItsSafetensorsName) {
  const std::pair<DType, int64_t> all[] = {{DType::kBF16, 2},   {DType::kF16, 2}, {DType::kF32, 4},
                                           {DType::kF8E4M3, 1}, {DType::kU8, 1},  {DType::kI8, 1},
                                           {DType::kI32, 4},    {DType::kI64, 8}, {DType::kF64, 8},
                                           {DType::kBool, 1}};
  for (const auto& [t, size] : all) {
    EXPECT_EQ(dtype_size(t), size) << dtype_name(t);
    EXPECT_EQ(dtype_from_name(dtype_name(t), "test"), t);
  }
  EXPECT_STREQ(dtype_name(DType::kF8E4M3), "F8_E4M3");
}

TEST(DType, UnknownNameIsAnErrorNamingTheContext) {
  try {
    dtype_from_name("F4", "model.safetensors: tensor 'w'");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'w'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("F4"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moequant
