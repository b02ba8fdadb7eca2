// Enum arguments of the C API as the integers callers pass. A C caller (or a cast) can hand in
// any int where an mq_dtype or mq_format is expected; loading such a value as the enum type is
// undefined behaviour in C++, so the entry points read the integer bits and validate those
// before the value is used as an enum. Functions that receive an unvalidated enum take it by
// const reference for the same reason: passing it by value is already such a load.
#pragma once

#include <stdint.h>
#include <string.h>

#include "moequant/kernels/kernels.h"

namespace moequant {
namespace kernels {

// The integer stored in an enum object, read without an enum-typed load.
template <typename Enum>
inline int32_t raw_value(const Enum& e) {
  static_assert(sizeof(Enum) == sizeof(int32_t), "C enums of the API are int-sized");
  int32_t v;
  memcpy(&v, &e, sizeof v);
  return v;
}

inline bool is_known_dtype(int32_t d) {
  return d == MQ_DTYPE_BF16 || d == MQ_DTYPE_F16 || d == MQ_DTYPE_F32;
}

}  // namespace kernels
}  // namespace moequant
