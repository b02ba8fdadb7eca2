// Fault driver for fault_test.sh: one rank dies, stalls, or fails alone, in the middle of a
// batched amax sync, and the others must not hang.
//
//   fault_driver killed  --timeout-s T   last rank _exit()s after the consistency check, before
//                                        the EP values' all_reduce_max; survivors must time out
//   fault_driver stalled --timeout-s T   last rank sleeps T + 1 s there, then goes on (and fails
//                                        in turn: its peers are gone)
//   fault_driver abort                   rank 1 throws and goes through run_or_abort_job(); the
//                                        others wait in a barrier with a 60 s deadline and must
//                                        be ended by MPI_Abort long before that
//   --nccl                               communicators are NCCL (bootstrap_world(kCuda) under
//                                        mpirun, one GPU per rank) instead of MPI
//
// Each survivor prints one line "FAULT-TEST rank R: caught after S s: <error>" and leaves with
// _exit(3): MPI cannot be finalized with a dead peer, and a zero exit code without
// MPI_Finalize would make mpirun kill the job before the other survivors report.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "fault_injector.h"
#include "moequant/common/error.h"
#include "moequant/parallel/amax_sync.h"
#include "moequant/parallel/job_abort.h"
#include "moequant/parallel/mpi_communicator.h"

#ifdef MOEQUANT_HAS_NCCL
#include <cuda_runtime.h>

#include "moequant/parallel/nccl_communicator.h"
#endif

using namespace moequant;
using namespace moequant::parallel;
using moequant::parallel::testing::FaultInjector;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void report(int rank, Clock::time_point t0, const std::string& what, int code) {
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("FAULT-TEST rank %d: caught after %.2f s: %s\n", rank, s, what.c_str());
  std::fflush(stdout);
  _exit(code);
}

// MPI world, or an NCCL world built the way a host program would (ncclUniqueId over MPI, GPU =
// local rank). Not through bootstrap_world: that would link in the torchrun path and LibTorch.
std::unique_ptr<Communicator> make_world(bool nccl, std::chrono::milliseconds timeout) {
  auto mpi = MpiCommunicator::world("WORLD", timeout);
  if (!nccl) return mpi;
#ifdef MOEQUANT_HAS_NCCL
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  const int device = local ? std::atoi(local) : 0;
  MQ_CHECK(cudaSetDevice(device) == cudaSuccess, "cudaSetDevice(", device, ") failed");
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (mpi->rank() == 0) MQ_CHECK(ncclGetUniqueId(&id) == ncclSuccess, "ncclGetUniqueId failed");
  mpi->broadcast(&id, sizeof(id), 0);
  auto world =
      NcclCommunicator::create(id, mpi->size(), mpi->rank(), device, "WORLD", mpi->rank(), timeout);
  world->keep_alive(std::shared_ptr<Communicator>(std::move(mpi)));
  return world;
#else
  MQ_THROW("--nccl needs a build with NCCL");
#endif
}

int sync_with_fault(FaultInjector::Fault fault, bool nccl, std::chrono::milliseconds timeout) {
  auto world = make_world(nccl, timeout);
  const int rank = world->rank(), n = world->size(), victim = n - 1;
  ParallelSizes sizes;
  sizes.ep = n;  // EP spans the world; DP too (TP = 1)
  const ParallelState state(n, rank, sizes);
  std::map<Group, std::unique_ptr<Communicator>> comms;
  comms[Group::kDP] = world->split(0, rank, "DP");
  std::unique_ptr<Communicator> ep = world->split(0, rank, "EP");
  if (rank == victim)
    ep = std::make_unique<FaultInjector>(std::move(ep), fault, timeout + std::chrono::seconds(1));
  comms[Group::kEP] = std::move(ep);
  comms[Group::kWorld] = std::move(world);
  ProcessGroups groups = ProcessGroups::adopt(state, std::move(comms));

  std::vector<std::vector<float>> values(100);
  std::vector<AmaxEntry> entries;
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = {static_cast<float>(rank + i)};
    entries.push_back({"q" + std::to_string(i), &values[i], group_bit(Group::kEP)});
  }
  const auto t0 = Clock::now();
  try {
    sync_amax(entries, groups);
  } catch (const Error& e) {
    report(rank, t0, e.what(), 3);
  }
  report(rank, t0, "no error", rank == victim ? 3 : 4);
}

int abort_scenario(bool nccl) {
  auto world = make_world(nccl, std::chrono::seconds(60));
  const int rank = world->rank();
  world->barrier();
  const auto t0 = Clock::now();
  if (rank == 1)
    return run_or_abort_job([]() -> int { throw Error("injected failure on rank 1"); });
  try {
    world->barrier();  // rank 1 never comes: only MPI_Abort can end this within the test
  } catch (const Error& e) {
    report(rank, t0, e.what(), 3);
  }
  report(rank, t0, "barrier returned", 4);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string scenario = argc > 1 ? argv[1] : "";
  double timeout_s = 3;
  bool nccl = false;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--timeout-s") == 0 && i + 1 < argc)
      timeout_s = std::atof(argv[i + 1]);
    if (std::strcmp(argv[i], "--nccl") == 0) nccl = true;
  }
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  try {
    if (scenario == "killed") return sync_with_fault(FaultInjector::Fault::kDie, nccl, timeout);
    if (scenario == "stalled") return sync_with_fault(FaultInjector::Fault::kStall, nccl, timeout);
    if (scenario == "abort") return abort_scenario(nccl);
  } catch (const std::exception& e) {
    std::printf("FAULT-TEST setup failed: %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "usage: fault_driver killed|stalled|abort [--timeout-s S] [--nccl]\n");
  return 2;
}
