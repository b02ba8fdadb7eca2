// NCCL world creation for bootstrap_world (private; compiled only with MOEQUANT_HAS_NCCL).
#pragma once

#include <memory>

#include "moequant/parallel/bootstrap.h"
#include "moequant/parallel/mpi_communicator.h"

namespace moequant::parallel {

// A world of one on device 0 (launched alone with a GPU): init, split, collectives and abort
// all still run through NCCL.
std::unique_ptr<Communicator> nccl_world_alone(const BootstrapOptions& options);

// Under an MPI launcher: rank 0's ncclUniqueId is broadcast over `mpi_world`, which (with MPI
// itself) is kept alive as long as the NCCL world. `local_rank` < 0: derived from host names.
std::unique_ptr<Communicator> nccl_world_over_mpi(std::unique_ptr<MpiCommunicator> mpi_world,
                                                  int local_rank, const BootstrapOptions& options);

// Under torchrun: the ncclUniqueId travels through the agent's TCPStore (torchrun_store.h).
std::unique_ptr<Communicator> nccl_world_over_torchrun(const LaunchInfo& launch,
                                                       const BootstrapOptions& options);

}  // namespace moequant::parallel
