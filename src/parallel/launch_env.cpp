// detect_launch(): reading the launchers' environment variables.
#include <cstdlib>
#include <string>

#include "moequant/common/error.h"
#include "moequant/parallel/bootstrap.h"

namespace moequant::parallel {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

int env_int(const char* name, int fallback, int min_value = 0) {
  const char* v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  MQ_CHECK(end && *end == '\0' && x >= min_value && x <= 1 << 30, name, "='", v,
           "' is not an integer >= ", min_value);
  return static_cast<int>(x);
}

}  // namespace

LaunchInfo detect_launch() {
  LaunchInfo info;
  // Open MPI's mpirun (and Open MPI 5 / PRRTE) set OMPI_COMM_WORLD_*; srun --mpi=pmix sets
  // PMIX_RANK.
  if (env("OMPI_COMM_WORLD_SIZE") || env("PMIX_RANK")) {
    info.launcher = Launcher::kMpi;
    info.rank = env_int("OMPI_COMM_WORLD_RANK", env_int("PMIX_RANK", -1));
    info.world_size = env_int("OMPI_COMM_WORLD_SIZE", -1, 1);
    info.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("SLURM_LOCALID", -1));
    return info;
  }
  const char* torchrun_vars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"};
  int present = 0;
  std::string missing;
  for (const char* v : torchrun_vars) {
    if (env(v))
      ++present;
    else
      missing += str_cat(missing.empty() ? "" : ", ", v);
  }
  if (present == 0) return info;  // alone
  MQ_CHECK(present == 5, "torchrun environment incomplete: ", missing,
           " unset (set all of RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, or none)");
  info.launcher = Launcher::kTorchrun;
  info.world_size = env_int("WORLD_SIZE", 1, 1);
  info.rank = env_int("RANK", 0);
  info.local_rank = env_int("LOCAL_RANK", 0);
  MQ_CHECK(info.rank < info.world_size, "RANK=", info.rank,
           " is outside WORLD_SIZE=", info.world_size);
  info.master_addr = env("MASTER_ADDR");
  info.master_port = env_int("MASTER_PORT", 0, 1);
  MQ_CHECK(info.master_port <= 65535, "MASTER_PORT=", info.master_port, " is not a TCP port");
  const char* agent = env("TORCHELASTIC_USE_AGENT_STORE");
  info.agent_store = agent && (std::string(agent) == "True" || std::string(agent) == "true" ||
                               std::string(agent) == "1");
  info.run_id = env("TORCHELASTIC_RUN_ID") ? env("TORCHELASTIC_RUN_ID") : "none";
  info.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0);
  return info;
}

}  // namespace moequant::parallel
