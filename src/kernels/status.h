// Internal helpers of the kernel layer: error reporting and argument checks.
#pragma once

#include <string>

#include "moequant/kernels/kernels.h"

namespace moequant {
namespace kernels {

// Records `message` as mq_last_error() and returns `status`.
mq_status set_error(mq_status status, const std::string& message);

}  // namespace kernels
}  // namespace moequant

// Returns MQ_ERR_INVALID from the enclosing mq_* function when `cond` is false.
#define MQ_KCHECK(cond, msg)                                                   \
  do {                                                                         \
    if (!(cond)) return ::moequant::kernels::set_error(MQ_ERR_INVALID, (msg)); \
  } while (0)
