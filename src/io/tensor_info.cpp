// Element and byte counts of tensors, with the overflow checks every header field needs.
#include <limits>

#include "moequant/common/error.h"
#include "moequant/io/safetensors.h"

namespace moequant::io {

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  return n;
}

uint64_t TensorInfo::nbytes() const {
  return static_cast<uint64_t>(numel()) * static_cast<uint64_t>(dtype_size(dtype));
}

uint64_t tensor_nbytes(DType dtype, const std::vector<int64_t>& shape, const std::string& context) {
  // numel() returns int64_t, so the element count must fit it, not only the byte count.
  constexpr uint64_t kMaxNumel = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t numel = 1;
  for (const int64_t d : shape) {
    MQ_CHECK(d >= 0, context, ": shape ", shape_string(shape), " has a negative dimension");
    const bool overflow = __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel);
    MQ_CHECK(!overflow && numel <= kMaxNumel, context, ": shape ", shape_string(shape),
             " has more elements than fit in 64 bits");
  }
  uint64_t bytes = 0;
  const bool overflow =
      __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(dtype)), &bytes);
  MQ_CHECK(!overflow, context, ": ", dtype_name(dtype), " ", shape_string(shape),
           " needs more bytes than fit in 64 bits");
  return bytes;
}

}  // namespace moequant::io
