#include "moequant/export/scale_checks.h"

#include <cmath>

#include "moequant/common/error.h"
#include "moequant/core/format.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

namespace {

// Count of elements whose bits are outside [1, max_bits]: for these formats exactly the zeros,
// negatives, NaN and Inf (the positive finite values are the bit patterns 1 .. max_bits). A
// plain loop without an early exit, so g++ vectorizes it: export checks every block scale.
template <typename Bits>
int64_t count_invalid(const Bits* p, int64_t n, Bits max_bits) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad += static_cast<Bits>(p[i] - 1u) >= max_bits;
  return bad;
}

float scale_value(DType dtype, const void* data, int64_t i) {
  switch (dtype) {
    case DType::kF32:
      return static_cast<const float*>(data)[i];
    case DType::kF16:
      return num::half_to_float(static_cast<const uint16_t*>(data)[i]);
    default:
      return num::e4m3_to_float(static_cast<const uint8_t*>(data)[i]);
  }
}

}  // namespace

void check_scale_tensor(const std::string& name, DType dtype, const at::Tensor& host) {
  if (!is_scale_suffix(name.substr(name.rfind('.') + 1))) return;
  const int64_t n = host.numel();
  const void* data = host.data_ptr();
  int64_t bad = 0;
  switch (dtype) {
    case DType::kF32:
      bad = count_invalid(static_cast<const uint32_t*>(data), n, uint32_t{0x7f7fffffu});
      break;
    case DType::kF16:
      bad = count_invalid(static_cast<const uint16_t*>(data), n, uint16_t{0x7bffu});
      break;
    case DType::kF8E4M3:  // 0x7f is NaN (e4m3 has no Inf), 0x7e = 448 the largest
      bad = count_invalid(static_cast<const uint8_t*>(data), n, uint8_t{0x7eu});
      break;
    default:
      return;
  }
  if (bad == 0) return;
  for (int64_t i = 0; i < n; ++i) {
    const float v = scale_value(dtype, data, i);
    MQ_CHECK(is_valid_scale(v), "scale '", name, "' element ", i, " is ", v,
             ": a zero, negative or non-finite scale makes serving engines produce NaN or "
             "wrong values");
  }
  MQ_THROW("internal: scale '", name, "' has ", bad,
           " invalid element(s) by its bits, none by value");
}

}  // namespace moequant
