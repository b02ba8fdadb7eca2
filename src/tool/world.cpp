#include "world.h"

#include <chrono>

#include "moequant/parallel/bootstrap.h"
#include "moequant/parallel/deadline.h"

namespace moequant::tool {

std::unique_ptr<parallel::Communicator> make_tool_world(bool cuda, double timeout_s) {
  parallel::BootstrapOptions options;
  options.device = cuda ? parallel::DeviceKind::kCuda : parallel::DeviceKind::kCpu;
  if (timeout_s != 0) options.timeout = parallel::timeout_from_seconds(timeout_s, "--timeout");
  return parallel::bootstrap_world(options);
}

}  // namespace moequant::tool
