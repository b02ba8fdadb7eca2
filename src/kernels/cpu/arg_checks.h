// Argument checks shared by the CPU quantize and dequantize entry points.
//
// Each check returns MQ_OK or records a message naming the function, the requirement and the
// actual shape, so a caller several layers up can tell exactly which tensor was refused.
#pragma once

#include <stdint.h>

#include <string>

#include "moequant/kernels/kernels.h"
#include "status.h"

namespace moequant {
namespace kernels {

inline std::string shape_text(int64_t rows, int64_t cols) {
  return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

// rows > 0 and cols > 0.
inline mq_status check_positive_shape(const char* fn, int64_t rows, int64_t cols) {
  MQ_KCHECK(rows > 0 && cols > 0,
            std::string(fn) + ": rows and cols must be positive, got " + shape_text(rows, cols));
  return MQ_OK;
}

// `value` (named `what`) must be a multiple of `multiple` for this format.
inline mq_status check_multiple(const char* fn, const char* what, int64_t value, int64_t multiple,
                                int64_t rows, int64_t cols) {
  MQ_KCHECK(value % multiple == 0, std::string(fn) + ": " + what + " must be a multiple of " +
                                       std::to_string(multiple) + ", got a " +
                                       shape_text(rows, cols) + " matrix");
  return MQ_OK;
}

inline mq_status check_not_null(const char* fn, const void* ptr, const char* name) {
  MQ_KCHECK(ptr != nullptr, std::string(fn) + ": `" + name + "` is null");
  return MQ_OK;
}

inline mq_status check_per_row_flag(const char* fn, int32_t per_row) {
  MQ_KCHECK(per_row == 0 || per_row == 1,
            std::string(fn) + ": per_row must be 0 or 1, got " + std::to_string(per_row));
  return MQ_OK;
}

}  // namespace kernels
}  // namespace moequant

// Returns from the enclosing function when `expr` (an mq_status) is not MQ_OK.
#define MQ_KRETURN_IF_ERROR(expr)               \
  do {                                          \
    const mq_status mq_status_ = (expr);        \
    if (mq_status_ != MQ_OK) return mq_status_; \
  } while (0)
