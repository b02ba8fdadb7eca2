#include "host_comms.h"

#include "moequant/common/error.h"
#include "moequant/parallel/mpi_communicator.h"

#ifdef MOEQUANT_HAS_NCCL
#include <cuda_runtime_api.h>

#include "moequant/parallel/nccl_communicator.h"
#endif

namespace loop {

using moequant::parallel::Group;
using moequant::parallel::group_name;

namespace {

constexpr Group kGroups[] = {Group::kTP, Group::kDP,  Group::kETP,
                             Group::kEP, Group::kEDP, Group::kPP};

void check_mpi(int rc, const char* call) {
  MQ_CHECK(rc == MPI_SUCCESS, call, " failed: ", rc);
}

}  // namespace

int node_local_rank() {
  MPI_Comm node;
  check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
  int rank = 0;
  MPI_Comm_rank(node, &rank);
  MPI_Comm_free(&node);
  return rank;
}

HostComms::HostComms(const moequant::parallel::ParallelState& ps, bool cuda, int device) {
  if (!cuda) {
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &mpi_[Group::kWorld]), "MPI_Comm_dup");
    // Every rank splits the same groups in the same order; color = the group's lowest rank.
    for (Group g : kGroups) {
      if (ps.size(g) == 1) continue;
      check_mpi(
          MPI_Comm_split(MPI_COMM_WORLD, ps.group_ranks(g).front(), ps.group_rank(g), &mpi_[g]),
          "MPI_Comm_split");
    }
    return;
  }
#ifdef MOEQUANT_HAS_NCCL
  MQ_CHECK(cudaSetDevice(device) == cudaSuccess, "cudaSetDevice(", device, ") failed");
  ncclUniqueId id;
  if (ps.rank() == 0) MQ_CHECK(ncclGetUniqueId(&id) == ncclSuccess, "ncclGetUniqueId failed");
  check_mpi(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
  ncclComm_t world;
  MQ_CHECK(ncclCommInitRank(&world, ps.world_size(), id, ps.rank()) == ncclSuccess,
           "ncclCommInitRank failed");
  nccl_[Group::kWorld] = world;
  for (Group g : kGroups) {
    if (ps.size(g) == 1) continue;
    ncclComm_t sub;
    MQ_CHECK(ncclCommSplit(world, ps.group_ranks(g).front(), ps.group_rank(g), &sub, nullptr) ==
                 ncclSuccess,
             "ncclCommSplit (", group_name(g), ") failed");
    nccl_[g] = sub;
  }
#else
  (void)device;
  MQ_THROW("--device cuda needs a moequant build with NCCL");
#endif
}

HostComms::~HostComms() {
  // Groups first, the world (split parent) last.
  for (auto it = mpi_.rbegin(); it != mpi_.rend(); ++it) MPI_Comm_free(&it->second);
#ifdef MOEQUANT_HAS_NCCL
  for (auto it = nccl_.rbegin(); it != nccl_.rend(); ++it) ncclCommDestroy(it->second);
#endif
}

moequant::parallel::ProcessGroups HostComms::adopt(
    const moequant::parallel::ParallelState& ps) const {
  std::map<Group, std::unique_ptr<moequant::parallel::Communicator>> comms;
  for (const auto& [g, comm] : mpi_)
    comms[g] = moequant::parallel::MpiCommunicator::wrap(comm, group_name(g));
#ifdef MOEQUANT_HAS_NCCL
  for (const auto& [g, comm] : nccl_)
    comms[g] = moequant::parallel::NcclCommunicator::wrap(comm, group_name(g), ps.rank());
#endif
  return moequant::parallel::ProcessGroups::adopt(ps, std::move(comms));
}

}  // namespace loop
