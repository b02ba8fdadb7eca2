#include "mpi_runtime.h"

#include <cstdlib>

#include <mpi.h>

#include <atomic>
#include <mutex>

#include "moequant/common/error.h"

namespace moequant::parallel {

namespace {
std::mutex g_mutex;
std::weak_ptr<MpiRuntime> g_runtime;
std::atomic<bool> g_failed{false};
}  // namespace

namespace {
void finalize_at_exit() {
  if (g_failed) return;
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}
}  // namespace

std::shared_ptr<MpiRuntime> MpiRuntime::acquire() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (auto rt = g_runtime.lock()) return rt;
  int finalized = 0;
  MPI_Finalized(&finalized);
  MQ_CHECK(!finalized, "MPI was already finalized; it cannot be initialized again");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MQ_CHECK(rc == MPI_SUCCESS, "MPI_Init_thread failed (error ", rc, ")");
    // MPI cannot be initialized twice in a process: finalize at exit, not when the last
    // communicator goes, so that a program may create worlds again (tests do).
    std::atexit(finalize_at_exit);
  }
  std::shared_ptr<MpiRuntime> rt(new MpiRuntime(!initialized));
  g_runtime = rt;
  return rt;
}

void MpiRuntime::note_failure() {
  g_failed = true;
}

int MpiRuntime::world_rank_or_unknown() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return -1;
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

MpiRuntime::~MpiRuntime() = default;

}  // namespace moequant::parallel
