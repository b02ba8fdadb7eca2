#include "world.h"

#include <chrono>

#include "moequant/dist/bootstrap.h"
#include "moequant/dist/deadline.h"

namespace moequant::tool {

std::unique_ptr<dist::Communicator> make_tool_world(bool cuda, double timeout_s) {
  dist::BootstrapOptions options;
  options.device = cuda ? dist::DeviceKind::kCuda : dist::DeviceKind::kCpu;
  if (timeout_s > 0)
    options.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  return dist::bootstrap_world(options);
}

}  // namespace moequant::tool
