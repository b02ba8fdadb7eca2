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

// The bit-pattern scan agrees with is_valid_scale on every e4m3 and fp16 pattern and on f32's
// edges, each pattern alone and behind valid ones (the scan counts, the error names the first).
TEST(ScaleChecks, EveryBitPatternAsIsValidScaleSays) {
  for (int b = 0; b < 256; ++b) {
    at::Tensor t = at::full({37}, num::float_to_e4m3(2.0f), at::kByte);
    t[33] = b;
    const bool valid = is_valid_scale(num::e4m3_to_float(static_cast<uint8_t>(b)));
    EXPECT_EQ(error_of("x.weight_scale", DType::kF8E4M3, t).empty(), valid) << "e4m3 " << b;
    if (!valid) {
      EXPECT_NE(error_of("x.weight_scale", DType::kF8E4M3, t).find("element 33"),
                std::string::npos);
    }
  }
  for (int b = 0; b < 65536; b += 7) {
    at::Tensor t = at::full({19}, 0x3c00, at::kShort);  // fp16 1.0
    t[5] = static_cast<int16_t>(static_cast<uint16_t>(b));
    const bool valid = is_valid_scale(num::half_to_float(static_cast<uint16_t>(b)));
    EXPECT_EQ(error_of("x.scales", DType::kF16, t).empty(), valid) << "f16 " << b;
  }
  for (float v : {1e-45f, 3.4028235e38f, -0.0f, -1e-45f, INFINITY, -INFINITY, NAN, 0.0f}) {
    at::Tensor t = at::ones({70}, at::kFloat);
    t[69] = v;
    EXPECT_EQ(error_of("x.input_scale", DType::kF32, t).empty(), is_valid_scale(v)) << v;
  }
}

}  // namespace
}  // namespace moequant
