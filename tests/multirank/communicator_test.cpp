// The MPI backend and what is built on it: collectives, point to point, split, wrapping the
// host's communicator, deadlines, agree_on_error, ProcessGroups (split and adopted).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "moequant/common/error.h"
#include "moequant/parallel/deadline.h"
#include "moequant/parallel/error_agreement.h"
#include "mpi_test_util.h"

namespace moequant::parallel::testing {
namespace {

using std::chrono::milliseconds;

TEST(MpiCommunicator, Identity) {
  auto w = MpiCommunicator::world();
  EXPECT_EQ(w->rank(), world_rank());
  EXPECT_EQ(w->size(), world_size());
  EXPECT_EQ(w->name(), "WORLD");
  EXPECT_EQ(std::string(w->backend()), "mpi");
  EXPECT_EQ(w->world_rank(), world_rank());
  EXPECT_TRUE(w->owns_handle());
  EXPECT_FALSE(w->supports_device_buffers());
}

TEST(MpiCommunicator, Collectives) {
  auto w = MpiCommunicator::world();
  const int r = w->rank(), n = w->size();
  const uint64_t before = w->collective_count();

  std::vector<float> f{static_cast<float>(r), -1.0f, r == n - 1 ? 7.0f : -1.0f};
  w->all_reduce_max(f.data(), f.size());
  EXPECT_EQ(f, (std::vector<float>{static_cast<float>(n - 1), -1.0f, 7.0f}));

  int64_t s[2] = {r + 1, 1};
  w->all_reduce_sum(s, 2);
  EXPECT_EQ(s[0], int64_t{n} * (n + 1) / 2);
  EXPECT_EQ(s[1], n);
  int64_t m = 100 - r;
  w->all_reduce_max(&m, 1);
  EXPECT_EQ(m, 100);
  w->all_reduce_max(static_cast<float*>(nullptr), 0);  // zero-size still matches on every rank

  for (int root = 0; root < n; ++root) {
    char msg[32] = "??????????????";
    if (r == root) std::snprintf(msg, sizeof(msg), "from root %d", root);
    w->broadcast(msg, sizeof(msg), root);
    EXPECT_EQ(std::string(msg), "from root " + std::to_string(root));
  }

  // Variable sizes, empty strings and zero bytes survive the gather.
  std::string mine = r % 2 ? std::string() : std::string(static_cast<size_t>(r + 1), '\0') + "x";
  const auto all = w->all_gather_bytes(mine);
  ASSERT_EQ(all.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    EXPECT_EQ(all[i], i % 2 ? std::string() : std::string(static_cast<size_t>(i + 1), '\0') + "x");

  w->barrier();
  EXPECT_EQ(w->collective_count() - before, 6u + static_cast<uint64_t>(n));
}

TEST(MpiCommunicator, AllToAllDeliversEachPairsBytesAndFloatSums) {
  auto w = MpiCommunicator::world();
  const int r = w->rank(), n = w->size();
  // Rank r sends "r>d" repeated d times to rank d (nothing to itself when r == d == 0), with a
  // zero byte inside, so empty messages and binary payloads are covered.
  std::vector<std::string> out(static_cast<size_t>(n));
  for (int d = 0; d < n; ++d)
    for (int k = 0; k < d; ++k) out[d] += std::to_string(r) + '\0' + std::to_string(d);
  const uint64_t before = w->collective_count();
  const std::vector<std::string> in = w->all_to_all_bytes(out);
  EXPECT_EQ(w->collective_count() - before, 1u);
  ASSERT_EQ(in.size(), static_cast<size_t>(n));
  for (int src = 0; src < n; ++src) {
    std::string want;
    for (int k = 0; k < r; ++k) want += std::to_string(src) + '\0' + std::to_string(r);
    EXPECT_EQ(in[src], want) << "from rank " << src;
  }
  EXPECT_THROW(w->all_to_all_bytes({}), Error);  // one message per rank, or nothing moves

  std::vector<float> f{1.0f, static_cast<float>(r), 0.5f};
  w->all_reduce_sum(f.data(), f.size());
  EXPECT_EQ(f, (std::vector<float>{static_cast<float>(n), n * (n - 1) / 2.0f, 0.5f * n}));
}

TEST(MpiCommunicator, SendRecvRing) {
  auto w = MpiCommunicator::world();
  const int r = w->rank(), n = w->size();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  std::vector<int> out(1000, r), in(1000, -1);
  // Even ranks send first: with blocking-style calls a ring needs an order.
  if (r % 2 == 0) {
    w->send(out.data(), out.size() * sizeof(int), next);
    w->recv(in.data(), in.size() * sizeof(int), prev);
  } else {
    w->recv(in.data(), in.size() * sizeof(int), prev);
    w->send(out.data(), out.size() * sizeof(int), next);
  }
  EXPECT_EQ(in, std::vector<int>(1000, prev));
  EXPECT_EQ(w->p2p_count(), 2u);
  EXPECT_NE(error_of([&] { w->send(out.data(), 4, r); }).find("cannot send to itself"),
            std::string::npos);
}

TEST(MpiCommunicator, RecvOfWrongSizeIsAnError) {
  auto w = MpiCommunicator::world();
  auto pair = w->split(w->rank() / 2, 0, "PAIR");
  if (pair->size() < 2) return;
  char buf[16] = {};
  if (pair->rank() == 0) {
    pair->send(buf, 10, 1);
  } else {
    const std::string err = error_of([&] { pair->recv(buf, 12, 0); });
    EXPECT_NE(err.find("PAIR recv failed"), std::string::npos) << err;
    EXPECT_NE(err.find("received 10 bytes from peer 0 where 12 were expected"), std::string::npos)
        << err;
    EXPECT_TRUE(pair->failed());
    EXPECT_NE(error_of([&] { pair->barrier(); }).find("unusable after an earlier failure"),
              std::string::npos);
  }
}

TEST(MpiCommunicator, SplitOrdersByKeyAndNames) {
  auto w = MpiCommunicator::world();
  w->set_timeout(milliseconds(12345));
  const int r = w->rank(), n = w->size();
  // Two colors; keys reversed so that the highest world rank becomes rank 0.
  auto sub = w->split(r % 2, -r, "HALF");
  EXPECT_EQ(sub->name(), "HALF");
  EXPECT_EQ(sub->timeout(), milliseconds(12345));
  EXPECT_EQ(sub->world_rank(), r);
  const int members = (n - r % 2 + 1) / 2;
  EXPECT_EQ(sub->size(), members);
  EXPECT_EQ(sub->rank(), members - 1 - r / 2);
  int64_t x = r;
  sub->all_reduce_max(&x, 1);
  EXPECT_EQ(x, r % 2 == (n - 1) % 2 ? n - 1 : n - 2);
}

TEST(MpiCommunicator, WrapLeavesTheHostCommunicatorAlone) {
  MPI_Comm host;
  ASSERT_EQ(MPI_Comm_dup(MPI_COMM_WORLD, &host), MPI_SUCCESS);
  {
    auto wrapped = MpiCommunicator::wrap(host, "HOST");
    EXPECT_FALSE(wrapped->owns_handle());
    EXPECT_EQ(wrapped->handle(), host);
    int64_t one = 1;
    wrapped->all_reduce_sum(&one, 1);
    EXPECT_EQ(one, world_size());
  }
  // Still valid after the wrapper is gone: the host frees it, exactly once.
  int64_t one = 1, sum = 0;
  EXPECT_EQ(MPI_Allreduce(&one, &sum, 1, MPI_INT64_T, MPI_SUM, host), MPI_SUCCESS);
  EXPECT_EQ(sum, world_size());
  EXPECT_EQ(MPI_Comm_free(&host), MPI_SUCCESS);
  {
    auto w = MpiCommunicator::wrap(MPI_COMM_WORLD, "WORLD");
    w->barrier();
  }
  EXPECT_EQ(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
}

TEST(MpiCommunicator, DeadlineNamesGroupOperationAndRank) {
  // Rank 0 waits for a message nobody sends yet: it must give up at the deadline. Afterwards the
  // sender delivers it, completing the abandoned receive into its (leaked) staging buffer.
  auto w = MpiCommunicator::world();
  auto pair = w->split(w->rank() / 2, 0, "EP");
  if (pair->size() == 2) {
    char buf[8] = {};
    if (pair->rank() == 0) {
      pair->set_timeout(milliseconds(300));
      const auto t0 = std::chrono::steady_clock::now();
      const std::string err = error_of([&] { pair->recv(buf, sizeof(buf), 1); });
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_EQ(err, "EP recv timed out after 0.3 s on rank " + std::to_string(world_rank()) +
                         " (a peer died or stalled)");
      EXPECT_GE(s, 0.29);
      EXPECT_LT(s, 2.0);
      EXPECT_NE(error_of([&] {
                  pair->barrier();
                }).find("unusable after an earlier failure: EP recv timed out"),
                std::string::npos);
    }
    w->barrier();
    if (pair->rank() == 1) pair->send(buf, sizeof(buf), 0);
  }
  w->barrier();
}

TEST(MpiCommunicator, TimeoutFromEnvironment) {
  ASSERT_EQ(setenv(kTimeoutEnvVar, "2.5", 1), 0);
  EXPECT_EQ(MpiCommunicator::world()->timeout(), milliseconds(2500));
  ASSERT_EQ(unsetenv(kTimeoutEnvVar), 0);
  EXPECT_EQ(MpiCommunicator::world()->timeout(), kDefaultCollectiveTimeout);
}

TEST(AgreeOnError, NoErrorIsOneCollective) {
  auto w = MpiCommunicator::world();
  const uint64_t before = w->collective_count();
  agree_on_error(*w, "");
  EXPECT_EQ(w->collective_count() - before, 1u);
}

TEST(AgreeOnError, EveryRankThrowsTheFailingRanksMessage) {
  auto w = MpiCommunicator::world();
  const int culprit = w->size() - 1;
  const std::string err =
      error_of([&] { agree_on_error(*w, w->rank() == culprit ? "cannot open shard 3 of 5" : ""); });
  EXPECT_EQ(err, "rank " + std::to_string(culprit) + ": cannot open shard 3 of 5");
}

TEST(AgreeOnError, LowestFailingRankWinsAndOthersAreCounted) {
  auto w = MpiCommunicator::world();
  const bool failing = w->rank() % 2 == 0;  // 0, 2, 4, ...
  const int others = (w->size() + 1) / 2 - 1;
  const std::string err =
      error_of([&] { agree_on_error(*w, failing ? "bad rank " + std::to_string(w->rank()) : ""); });
  std::string want = "rank 0: bad rank 0";
  if (others > 0)
    want += " (and " + std::to_string(others) + " more rank" + (others > 1 ? "s" : "") + " failed)";
  EXPECT_EQ(err, want);
}

TEST(ProcessGroups, SplitMatchesTheLayout) {
  for (const Layout& layout : layouts_for(world_size())) {
    SCOPED_TRACE(layout.name);
    ProcessGroups groups = make_groups(layout);
    const ParallelState& ps = groups.state();
    for (int g = 0; g < kNumGroups; ++g) {
      const auto group = static_cast<Group>(g);
      Communicator& c = groups.get(group);
      EXPECT_EQ(c.size(), ps.size(group)) << group_name(group);
      EXPECT_EQ(c.rank(), ps.group_rank(group)) << group_name(group);
      EXPECT_EQ(c.name(), group_name(group));
      // Members are exactly the layout's ranks, in order.
      const auto got = c.all_gather_bytes(std::to_string(world_rank()));
      std::vector<int> members;
      for (const auto& s : got) members.push_back(std::stoi(s));
      EXPECT_EQ(members, ps.group_ranks(group)) << group_name(group);
      EXPECT_EQ(std::string(c.backend()), ps.size(group) == 1 ? "single" : "mpi");
    }
  }
}

// What a host program (Megatron-style) does: its own MPI_Comm per group, handed in wrapped.
std::map<Group, std::unique_ptr<Communicator>> host_groups(const ParallelState& ps,
                                                           std::vector<MPI_Comm>& owned) {
  std::map<Group, std::unique_ptr<Communicator>> m;
  for (int g = 0; g < kNumGroups; ++g) {
    const auto group = static_cast<Group>(g);
    MPI_Comm c;
    MPI_Comm_split(MPI_COMM_WORLD, ps.group_ranks(group).front(), ps.group_rank(group), &c);
    owned.push_back(c);
    m[group] = MpiCommunicator::wrap(c, group_name(group));
  }
  return m;
}

TEST(ProcessGroups, AdoptsTheHostsCommunicators) {
  for (const Layout& layout : layouts_for(world_size())) {
    SCOPED_TRACE(layout.name);
    const ParallelState ps(world_size(), world_rank(), layout.sizes);
    std::vector<MPI_Comm> owned;
    {
      ProcessGroups groups = ProcessGroups::adopt(ps, host_groups(ps, owned));
      EXPECT_EQ(groups.get(Group::kEP).size(), ps.size(Group::kEP));
    }
    for (MPI_Comm& c : owned) EXPECT_EQ(MPI_Comm_free(&c), MPI_SUCCESS);  // still ours to free
  }
}

TEST(ProcessGroups, AdoptRejectsSwappedGroups) {
  if (world_size() != 4) GTEST_SKIP() << "needs 4 ranks (TP2 x DP2)";
  ParallelSizes sizes;
  sizes.tp = 2;
  const ParallelState ps(4, world_rank(), sizes);
  std::vector<MPI_Comm> owned;
  auto comms = host_groups(ps, owned);
  std::swap(comms[Group::kTP], comms[Group::kDP]);  // same sizes, wrong members
  // Ranks 1 and 2 see a wrong rank, 0 and 3 do not: all must fail alike, none may hang.
  const std::string err = error_of([&] { ProcessGroups::adopt(ps, std::move(comms)); });
  EXPECT_EQ(err.rfind("rank 1: TP communicator: world rank 1 is rank 0 in it but the layout puts "
                      "it at 1",
                      0),
            0u)
      << err;
  for (MPI_Comm& c : owned) MPI_Comm_free(&c);
}

}  // namespace
}  // namespace moequant::parallel::testing
