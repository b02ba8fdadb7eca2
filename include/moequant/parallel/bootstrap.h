// Bootstrap: the world communicator of this process, chosen from how it was launched.
//
//   launcher (detected from env)             | DeviceKind::kCpu     | DeviceKind::kCuda
//   -----------------------------------------+----------------------+-------------------------------
//   mpirun (OMPI_COMM_WORLD_*), srun (PMIX_*) | MPI world            | NCCL; ncclUniqueId over MPI
//   torchrun (RANK, WORLD_SIZE, MASTER_*...)  | error (1 rank: alone)| NCCL; ncclUniqueId over
//   TCPStore nothing                                   | single rank, no MPI  | NCCL world of one
//
// MPI is initialized only if nobody did (MPI_Init_thread) and then finalized when the last
// communicator derived from the world is destroyed. Under NCCL the device is the local rank
// (OMPI_COMM_WORLD_LOCAL_RANK / SLURM_LOCALID / LOCAL_RANK, else computed with
// MPI_Comm_split_type), set with cudaSetDevice.
// Under torchrun the agent serves a TCPStore at MASTER_ADDR:MASTER_PORT and sets
// TORCHELASTIC_USE_AGENT_STORE=True: every worker, rank 0 included, connects as a client; without
// that variable rank 0 hosts the store. Our keys live under "moequant/<run id>/<restart>/".
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "moequant/parallel/communicator.h"
#include "moequant/parallel/deadline.h"

namespace moequant::parallel {

enum class DeviceKind { kCpu, kCuda };
enum class Launcher { kNone, kMpi, kTorchrun };

// What the launcher's environment says. -1 where it says nothing (MPI tells after init).
struct LaunchInfo {
  Launcher launcher = Launcher::kNone;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  // torchrun only
  std::string master_addr;
  int master_port = 0;
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE=True
  std::string run_id;        // TORCHELASTIC_RUN_ID ("none" when unset)
  int restart_count = 0;     // TORCHELASTIC_RESTART_COUNT
};

// Reads the environment. Throws moequant::Error on malformed or partial settings, naming the
// variable ("RANK='x' is not an integer", "torchrun environment incomplete: MASTER_PORT unset").
LaunchInfo detect_launch();

struct BootstrapOptions {
  DeviceKind device = DeviceKind::kCpu;
  // Deadline of every operation of the world and of the communicators split from it.
  std::chrono::milliseconds timeout = default_collective_timeout();
};

// The world communicator, named "WORLD". Throws moequant::Error with a clear remedy when the
// combination cannot work (torchrun on CPU, CUDA in a build without NCCL, no GPU for a rank).
std::unique_ptr<Communicator> bootstrap_world(DeviceKind want);
std::unique_ptr<Communicator> bootstrap_world(const BootstrapOptions& options);
std::unique_ptr<Communicator> bootstrap_world(const BootstrapOptions& options,
                                              const LaunchInfo& launch);

}  // namespace moequant::parallel
