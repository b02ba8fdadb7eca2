#include "moequant/parallel/job_abort.h"

#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "moequant/common/error.h"
#include "mpi_runtime.h"

namespace moequant::parallel {

namespace {
std::string rank_label() {
  const int mpi_rank = MpiRuntime::world_rank_or_unknown();
  if (mpi_rank >= 0) return str_cat("rank ", mpi_rank, ": ");
  for (const char* var : {"RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"})
    if (const char* v = std::getenv(var)) return str_cat("rank ", v, ": ");
  return "";
}
}  // namespace

void abort_job(const std::string& message, int exit_code) noexcept {
  try {
    const std::string line = str_cat("moequant: ", rank_label(), message, "\n");
    std::fflush(stdout);
    // write(2): unbuffered, and safe even if stdio is in a bad state.
    const ssize_t ignored = ::write(2, line.data(), line.size());
    (void)ignored;
  } catch (...) {
  }
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

int run_or_abort_job(const std::function<int()>& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    abort_job(e.what());
  } catch (...) {
    abort_job("unknown exception");
  }
}

}  // namespace moequant::parallel
