// Reading an input weight of any mq_dtype as float32, with the dtype resolved once per call
// (not once per element) so the inner loops are plain, inlinable code.
#pragma once

#include <stdint.h>

#include <string>

#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"
#include "status.h"

namespace moequant {
namespace kernels {

struct Bf16Reader {
  const uint16_t* data;
  float operator()(int64_t i) const { return num::bf16_to_float(data[i]); }
};

struct F16Reader {
  const uint16_t* data;
  float operator()(int64_t i) const { return num::half_to_float(data[i]); }
};

struct F32Reader {
  const float* data;
  float operator()(int64_t i) const { return data[i]; }
};

// Calls `body(reader)` with the reader for `dtype` and returns its status; an unknown dtype is
// MQ_ERR_INVALID naming `fn`.
template <typename Body>
mq_status with_reader(const char* fn, const void* w, mq_dtype dtype, Body&& body) {
  switch (dtype) {
    case MQ_DTYPE_BF16:
      return body(Bf16Reader{static_cast<const uint16_t*>(w)});
    case MQ_DTYPE_F16:
      return body(F16Reader{static_cast<const uint16_t*>(w)});
    case MQ_DTYPE_F32:
      return body(F32Reader{static_cast<const float*>(w)});
  }
  return set_error(MQ_ERR_INVALID,
                   std::string(fn) + ": unknown dtype " + std::to_string(static_cast<int>(dtype)));
}

}  // namespace kernels
}  // namespace moequant
