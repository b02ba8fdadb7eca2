// The host program's own communicators, created and freed the way a Megatron-style training job
// does it: one MPI_Comm per process group (MPI_Comm_split of MPI_COMM_WORLD) on CPU ranks, or one
// ncclComm_t per group (ncclCommInitRank, then ncclCommSplit) on GPU ranks. moequant never
// creates or frees them: adopt() wraps each one without ownership and hands them to
// ProcessGroups::adopt, which checks that they match the layout.
#pragma once

#include <mpi.h>

#include <map>

#include "moequant/parallel/process_groups.h"

#ifdef MOEQUANT_HAS_NCCL
#include <nccl.h>
#endif

namespace loop {

// This process's rank among the ranks of its node (its GPU index), from MPI.
int node_local_rank();

class HostComms {
 public:
  // Collective over MPI_COMM_WORLD. `cuda`: NCCL communicators on CUDA device `device`.
  HostComms(const moequant::parallel::ParallelState& ps, bool cuda, int device);
  ~HostComms();
  HostComms(const HostComms&) = delete;
  HostComms& operator=(const HostComms&) = delete;

  // Wraps every communicator (the host keeps ownership) into moequant's ProcessGroups. The
  // result must be destroyed before this object.
  moequant::parallel::ProcessGroups adopt(const moequant::parallel::ParallelState& ps) const;

 private:
  std::map<moequant::parallel::Group, MPI_Comm> mpi_;
#ifdef MOEQUANT_HAS_NCCL
  std::map<moequant::parallel::Group, ncclComm_t> nccl_;
#endif
};

}  // namespace loop
