#include "moequant/export/scale_checks.h"

#include <cmath>

#include "moequant/common/error.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

bool is_scale_suffix(const std::string& name) {
  for (const char* s :
       {".weight_scale", ".weight_scale_2", ".weight_scale_inv", ".input_scale", ".scales"})
    if (ends_with(name, s)) return true;
  return false;
}

void check_scale_tensor(const std::string& name, DType dtype, const at::Tensor& host) {
  if (!is_scale_suffix(name)) return;
  const int64_t n = host.numel();
  for (int64_t i = 0; i < n; ++i) {
    float v;
    switch (dtype) {
      case DType::kF32:
        v = static_cast<const float*>(host.data_ptr())[i];
        break;
      case DType::kF16:
        v = num::half_to_float(static_cast<const uint16_t*>(host.data_ptr())[i]);
        break;
      case DType::kF8E4M3:
        v = num::e4m3_to_float(static_cast<const uint8_t*>(host.data_ptr())[i]);
        break;
      default:
        return;
    }
    MQ_CHECK(is_valid_scale(v), "scale '", name, "' element ", i, " is ", v,
             ": a zero, negative or non-finite scale makes serving engines produce NaN or "
             "wrong values");
  }
}

std::vector<std::string> gate_up_equal_suffixes(QuantFormat format) {
  switch (format) {
    case QuantFormat::kFP8:
      return {"weight_scale", "input_scale"};
    case QuantFormat::kNVFP4:
      return {"weight_scale_2", "input_scale"};
    default:
      return {};
  }
}

}  // namespace moequant
