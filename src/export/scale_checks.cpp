#include "moequant/export/scale_checks.h"

#include <cmath>

#include "moequant/common/error.h"
#include "moequant/core/format.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

void check_scale_tensor(const std::string& name, DType dtype, const at::Tensor& host) {
  if (!is_scale_suffix(name.substr(name.rfind('.') + 1))) return;
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

}  // namespace moequant
