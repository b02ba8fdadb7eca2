// bootstrap_world under mpirun on CPU ranks: an MPI world that leaves MPI to its owner (the
// test main initialized it, so the world must not finalize it).
#include <gtest/gtest.h>

#include "moequant/parallel/bootstrap.h"
#include "mpi_test_util.h"

namespace moequant::parallel::testing {
namespace {

TEST(Bootstrap, CpuUnderMpirunIsAnMpiWorld) {
  const LaunchInfo launch = detect_launch();
  EXPECT_EQ(launch.launcher, Launcher::kMpi);
  EXPECT_EQ(launch.world_size, world_size());
  EXPECT_EQ(launch.rank, world_rank());
  {
    auto w = bootstrap_world(DeviceKind::kCpu);
    EXPECT_EQ(std::string(w->backend()), "mpi");
    EXPECT_EQ(w->size(), world_size());
    EXPECT_EQ(w->name(), "WORLD");
    w->barrier();
  }
  int finalized = 1;
  MPI_Finalized(&finalized);
  EXPECT_FALSE(finalized) << "MPI belongs to whoever initialized it";
}

}  // namespace
}  // namespace moequant::parallel::testing
