#include "world.h"

#include <chrono>
#include <cstdlib>

#include "moequant/core/error.h"
#include "moequant/dist/deadline.h"
#include "moequant/dist/mpi_communicator.h"
#include "moequant/dist/single_communicator.h"

namespace moequant::tool {

// TEMPORARY: CPU ranks only, until the launcher bootstrap (NCCL, torchrun) lands.
std::unique_ptr<dist::Communicator> make_tool_world(bool cuda, double timeout_s) {
  const auto timeout = timeout_s > 0
                           ? std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000))
                           : dist::default_collective_timeout();
  (void)cuda;
  if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr)
    return dist::MpiCommunicator::world("WORLD", timeout);
  return std::make_unique<dist::SingleCommunicator>("WORLD", 0, timeout);
}

}  // namespace moequant::tool
