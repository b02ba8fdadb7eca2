// The torchrun bootstrap's key exchange through c10d::TCPStore, with rank 0 hosting the store
// (no TORCHELASTIC_USE_AGENT_STORE) and ranks as threads of one process. The agent-store mode
// (every rank a client of torchrun's own store) runs under a real torchrun on GPU machines.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "moequant/common/error.h"
#include "torchrun_store.h"  // private to moequant_parallel

namespace moequant::parallel::testing {
namespace {

// A TCP port nobody listens on right now.
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

LaunchInfo launch(int rank, int world, int port, bool agent_store) {
  LaunchInfo l;
  l.launcher = Launcher::kTorchrun;
  l.rank = rank;
  l.world_size = world;
  l.local_rank = rank;
  l.master_addr = "127.0.0.1";
  l.master_port = port;
  l.agent_store = agent_store;
  l.run_id = "test";
  return l;
}

TEST(TorchrunStore, RankZeroHostsAndEveryRankReadsItsValue) {
  const int world = 3, port = free_port();
  std::vector<std::string> got(world);
  std::vector<std::string> errors(world);
  std::vector<std::thread> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.emplace_back([&, r] {
      try {
        got[r] = share_through_tcp_store(launch(r, world, port, false), "nccl_unique_id/WORLD",
                                         r == 0 ? std::string("id\0bytes", 8) : "",
                                         std::chrono::seconds(20));
      } catch (const Error& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : ranks) t.join();
  for (int r = 0; r < world; ++r) {
    EXPECT_EQ(errors[r], "") << "rank " << r;
    EXPECT_EQ(got[r], std::string("id\0bytes", 8)) << "rank " << r;
  }
}

TEST(TorchrunStore, NoStoreIsANamedErrorAtTheDeadline) {
  const int port = free_port();
  const auto t0 = std::chrono::steady_clock::now();
  std::string err;
  try {
    share_through_tcp_store(launch(1, 2, port, true), "k", "", std::chrono::milliseconds(1500));
  } catch (const Error& e) {
    err = e.what();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(err.rfind("TCPStore at 127.0.0.1:" + std::to_string(port) +
                          " (torchrun agent's store) on rank 1: ",
                      0),
            0u)
      << err;
  EXPECT_LT(s, 15.0);
}

}  // namespace
}  // namespace moequant::parallel::testing
