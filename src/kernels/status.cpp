// mq_last_error(): the thread-local message of the last failed kernel-API call.
#include "status.h"

#include <string>

namespace {
thread_local std::string g_last_error;
}

extern "C" const char* mq_last_error(void) {
  return g_last_error.c_str();
}

namespace moequant {
namespace kernels {
mq_status set_error(mq_status status, const std::string& message) {
  g_last_error = message;
  return status;
}
}  // namespace kernels
}  // namespace moequant
