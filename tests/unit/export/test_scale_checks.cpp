// Scale checks before publishing: a zero, NaN or Inf scale is refused naming the tensor and the
// element, other tensors are not scales; and the one rule for gate/up scalars.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "moequant/common/error.h"
#include "moequant/export/scale_checks.h"
#include "moequant/kernels/numerics.h"

namespace moequant {
namespace {

std::string error_of(const std::string& name, DType dtype, const at::Tensor& t) {
  try {
    check_scale_tensor(name, dtype, t);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ScaleChecks, ZeroNanAndInfAreRefusedNamingTheElement) {
  at::Tensor f = at::ones({4}, at::kFloat);
  EXPECT_EQ(error_of("a.weight_scale", DType::kF32, f), "");
  f[2] = 0.0f;
  const std::string e = error_of("a.weight_scale", DType::kF32, f);
  EXPECT_NE(e.find("'a.weight_scale' element 2 is 0"), std::string::npos) << e;
  f[2] = NAN;
  EXPECT_NE(error_of("a.input_scale", DType::kF32, f), "");
  f[2] = INFINITY;
  EXPECT_NE(error_of("a.weight_scale_inv", DType::kF32, f), "");
  at::Tensor e4m3 = at::full({3}, num::float_to_e4m3(1.0f), at::kByte);
  EXPECT_EQ(error_of("a.weight_scale", DType::kF8E4M3, e4m3), "");
  e4m3[1] = 0;  // e4m3 zero
  EXPECT_NE(error_of("a.weight_scale", DType::kF8E4M3, e4m3), "");
  at::Tensor half = at::zeros({2}, at::kShort);  // fp16 zeros
  EXPECT_NE(error_of("a.scales", DType::kF16, half), "");
  EXPECT_EQ(error_of("a.weight", DType::kF32, at::zeros({2}, at::kFloat)), "");  // not a scale
}

}  // namespace
}  // namespace moequant
