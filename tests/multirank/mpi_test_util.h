// Helpers shared by the MPI-launched tests.
#pragma once

#include <mpi.h>

#include <functional>
#include <memory>
#include <string>

#include "layouts.h"
#include "moequant/common/error.h"
#include "moequant/parallel/mpi_communicator.h"
#include "moequant/parallel/process_groups.h"

namespace moequant::parallel::testing {

inline int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// The groups of `layout` split from a private duplicate of MPI_COMM_WORLD.
inline ProcessGroups make_groups(const Layout& layout, const ModelDims& dims = {}) {
  const ParallelState state(world_size(), world_rank(), layout.sizes, dims);
  return ProcessGroups::split_from(MpiCommunicator::world("WORLD"), state);
}

// Runs `f` and returns the moequant::Error message it threw ("" if none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace moequant::parallel::testing
