#include "nccl_bootstrap.h"

#include <cuda_runtime.h>
#include <unistd.h>

#include <cstring>

#include "moequant/common/error.h"
#include "moequant/parallel/error_agreement.h"
#include "moequant/parallel/nccl_communicator.h"
#include "torchrun_store.h"

namespace moequant::parallel {

namespace {

// Selects the CUDA device of this rank; "" or the reason it cannot.
std::string select_device(int local_rank, int world_rank) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0)
    return str_cat("rank ", world_rank, ": no CUDA device is visible (",
                   err == cudaSuccess ? "0 devices" : cudaGetErrorString(err),
                   "); run CPU ranks with launch/mpirun.sh instead");
  if (local_rank >= count)
    return str_cat("rank ", world_rank, " has local rank ", local_rank, " but only ", count,
                   " CUDA device(s) are visible, and NCCL refuses two ranks on one GPU: start at "
                   "most ",
                   count, " ranks per node");
  const cudaError_t set = cudaSetDevice(local_rank);
  if (set != cudaSuccess)
    return str_cat("rank ", world_rank, ": cudaSetDevice(", local_rank,
                   ") failed: ", cudaGetErrorString(set));
  return "";
}

ncclUniqueId new_unique_id() {
  ncclUniqueId id;
  const ncclResult_t r = ncclGetUniqueId(&id);
  MQ_CHECK(r == ncclSuccess, "ncclGetUniqueId failed: ", ncclGetErrorString(r));
  return id;
}

// Index of this rank among the ranks on the same host, from every rank's host name.
int local_rank_from_hostnames(Communicator& world) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  const auto names = world.all_gather_bytes(host);
  int local = 0;
  for (int r = 0; r < world.rank(); ++r) local += names[r] == names[world.rank()] ? 1 : 0;
  return local;
}

}  // namespace

std::unique_ptr<Communicator> nccl_world_alone(const BootstrapOptions& options) {
  const std::string err = select_device(0, 0);
  MQ_CHECK(err.empty(), err);
  return NcclCommunicator::create(new_unique_id(), 1, 0, 0, "WORLD", 0, options.timeout);
}

std::unique_ptr<Communicator> nccl_world_over_mpi(std::unique_ptr<MpiCommunicator> mpi_world,
                                                  int local_rank, const BootstrapOptions& options) {
  if (local_rank < 0) local_rank = local_rank_from_hostnames(*mpi_world);
  const int rank = mpi_world->rank();
  // Agree before NCCL init: a rank without a GPU must not leave the others in ncclCommInitRank.
  agree_on_error(*mpi_world, select_device(local_rank, rank));
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (rank == 0) id = new_unique_id();
  mpi_world->broadcast(&id, sizeof(id), 0);
  auto comm = NcclCommunicator::create(id, mpi_world->size(), rank, local_rank, "WORLD", rank,
                                       options.timeout);
  // MPI stays initialized (and finalizes after) as long as the NCCL world and its splits live.
  comm->keep_alive(std::shared_ptr<Communicator>(std::move(mpi_world)));
  return comm;
}

std::unique_ptr<Communicator> nccl_world_over_torchrun(const LaunchInfo& launch,
                                                       const BootstrapOptions& options) {
  const std::string err = select_device(launch.local_rank, launch.rank);
  MQ_CHECK(err.empty(), err);
  std::string mine;
  if (launch.rank == 0) {
    const ncclUniqueId id = new_unique_id();
    mine.assign(reinterpret_cast<const char*>(&id), sizeof(id));
  }
  const std::string shared =
      share_through_tcp_store(launch, "nccl_unique_id/WORLD", mine, options.timeout);
  MQ_CHECK(shared.size() == sizeof(ncclUniqueId), "the ncclUniqueId read from the TCPStore has ",
           shared.size(), " bytes, expected ", sizeof(ncclUniqueId));
  ncclUniqueId id;
  std::memcpy(&id, shared.data(), sizeof(id));
  return NcclCommunicator::create(id, launch.world_size, launch.rank, launch.local_rank, "WORLD",
                                  launch.rank, options.timeout);
}

}  // namespace moequant::parallel
