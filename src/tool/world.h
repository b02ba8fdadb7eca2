// The tool's world communicator, from the launcher's environment (mpirun, torchrun, or alone).
#pragma once

#include <memory>

#include "moequant/parallel/communicator.h"

namespace moequant::tool {

// GPU ranks (`cuda`) use NCCL, CPU ranks MPI (or a world of one when launched alone).
// `timeout_s` != 0 overrides the collective deadline (range-checked: an error names --timeout).
std::unique_ptr<parallel::Communicator> make_tool_world(bool cuda, double timeout_s);

}  // namespace moequant::tool
