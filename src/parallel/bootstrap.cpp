#include "moequant/parallel/bootstrap.h"

#include "moequant/common/error.h"
#include "moequant/parallel/mpi_communicator.h"
#include "moequant/parallel/single_communicator.h"

#ifdef MOEQUANT_HAS_NCCL
#include "nccl_bootstrap.h"
#endif

namespace moequant::parallel {

#ifndef MOEQUANT_HAS_NCCL
namespace {

[[noreturn]] void no_nccl(const char* launcher) {
  MQ_THROW("GPU ranks need NCCL, but this build of moequant has none (launcher: ", launcher,
           "): rebuild with CUDA and NCCL, or run on CPU ranks with launch/mpirun.sh");
}

}  // namespace
#endif

std::unique_ptr<Communicator> bootstrap_world(DeviceKind want) {
  BootstrapOptions options;
  options.device = want;
  return bootstrap_world(options);
}

std::unique_ptr<Communicator> bootstrap_world(const BootstrapOptions& options) {
  return bootstrap_world(options, detect_launch());
}

std::unique_ptr<Communicator> bootstrap_world(const BootstrapOptions& o, const LaunchInfo& l) {
  const bool cuda = o.device == DeviceKind::kCuda;
  switch (l.launcher) {
    case Launcher::kNone:
      if (!cuda) return std::make_unique<SingleCommunicator>("WORLD", 0, o.timeout);
#ifdef MOEQUANT_HAS_NCCL
      return nccl_world_alone(o);
#else
      no_nccl("none");
#endif

    case Launcher::kMpi: {
      auto world = MpiCommunicator::world("WORLD", o.timeout);
      MQ_CHECK(l.world_size < 0 || world->size() == l.world_size, "the launcher announced ",
               l.world_size, " ranks but MPI started a world of ", world->size(),
               " (is this binary linked against the MPI library of the mpirun that runs it?)");
      if (!cuda) return world;
#ifdef MOEQUANT_HAS_NCCL
      return nccl_world_over_mpi(std::move(world), l.local_rank, o);
#else
      no_nccl("mpi");
#endif
    }

    case Launcher::kTorchrun:
      if (!cuda) {
        if (l.world_size == 1) return std::make_unique<SingleCommunicator>("WORLD", 0, o.timeout);
        MQ_THROW("torchrun needs GPUs and NCCL here (rank ", l.rank, " of ", l.world_size,
                 " asked for CPU ranks): run CPU ranks under MPI instead, e.g. "
                 "launch/mpirun.sh -np ",
                 l.world_size, " <binary> ...");
      }
#ifdef MOEQUANT_HAS_NCCL
      return nccl_world_over_torchrun(l, o);
#else
      no_nccl("torchrun");
#endif
  }
  MQ_THROW("unknown launcher id ", static_cast<int>(l.launcher));
}

}  // namespace moequant::parallel
