// Single-process tests of the distributed layer: ParallelState arithmetic and validation,
// deadlines, launcher detection, the single-rank backend and amax sync on a world of one.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "layouts.h"
#include "moequant/common/error.h"
#include "moequant/parallel/amax_sync.h"
#include "moequant/parallel/bootstrap.h"
#include "moequant/parallel/error_agreement.h"
#include "moequant/parallel/parallel_state.h"
#include "moequant/parallel/single_communicator.h"

namespace moequant::parallel::testing {
namespace {

using std::chrono::milliseconds;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

ParallelSizes sizes(int tp, int ep, int etp, int pp) {
  ParallelSizes s;
  s.tp = tp;
  s.ep = ep;
  s.etp = etp;
  s.pp = pp;
  return s;
}

TEST(ParallelState, ValidationNamesTheSizes) {
  EXPECT_EQ(error_of([] { ParallelState(6, 0, sizes(4, 1, 1, 1)); }),
            "world 6 is not divisible by TP 4 x PP 1");
  EXPECT_EQ(error_of([] { ParallelState(8, 0, sizes(1, 3, 1, 1)); }),
            "world 8 is not divisible by EP 3 x ETP 1 x PP 1");
  EXPECT_EQ(error_of([] {
              ParallelState(12, 0, sizes(1, 3, 1, 1), {4, 64, 0});
            }),
            "64 experts not divisible by EP 3");
  EXPECT_EQ(error_of([] {
              ParallelState(4, 0, sizes(1, 1, 4, 1), {4, 8, 18});
            }),
            "expert intermediate size 18 not divisible by ETP 4");
  EXPECT_EQ(error_of([] {
              ParallelState(8, 0, sizes(1, 1, 1, 8), {4, 8, 0});
            }),
            "4 layers cannot fill PP 8 stages (every stage needs at least one layer)");
  EXPECT_EQ(error_of([] { ParallelState(4, 4, sizes(1, 1, 1, 1)); }), "rank 4 is outside world 4");
  EXPECT_EQ(error_of([] { ParallelState(4, 0, sizes(0, 1, 1, 1)); }), "TP must be >= 1 (got 0)");
  const ParallelState ps(4, 0, sizes(2, 1, 1, 1));
  EXPECT_EQ(error_of([&] { ps.tp_shard(33, 0, "hidden size"); }),
            "hidden size 33 not divisible by TP 2");
  EXPECT_NE(error_of([&] { ps.local_experts(); }).find("without the number of experts"),
            std::string::npos);
}

// Megatron's formulas, checked for every rank of every test layout: coordinates round-trip,
// and each group is exactly the ranks that share all other coordinates.
TEST(ParallelState, MegatronOrderOnEveryTestLayout) {
  for (int world : {2, 4, 8}) {
    for (const Layout& l : layouts_for(world)) {
      SCOPED_TRACE(l.name);
      const ParallelSizes& s = l.sizes;
      const int dp = world / (s.tp * s.pp), edp = world / (s.ep * s.etp * s.pp);
      for (int r = 0; r < world; ++r) {
        const ParallelState ps(world, r, s);
        const DenseCoord d = ps.dense_coord();
        const ExpertCoord e = ps.expert_coord();
        EXPECT_EQ(r, d.tp + s.tp * (d.dp + dp * d.pp));
        EXPECT_EQ(r, e.etp + s.etp * (e.ep + s.ep * (e.edp + edp * e.pp)));
        EXPECT_EQ(d.pp, e.pp);
        EXPECT_EQ(ps.dense_rank(d), r);
        EXPECT_EQ(ps.expert_rank(e), r);
        for (int g = 0; g < kNumGroups; ++g) {
          const auto group = static_cast<Group>(g);
          const auto& members = ps.group_ranks(group);
          EXPECT_EQ(static_cast<int>(members.size()), ps.size(group));
          EXPECT_EQ(members[ps.group_rank(group)], r);
          for (int m : members) {
            const ParallelState other(world, m, s);
            const DenseCoord od = other.dense_coord();
            const ExpertCoord oe = other.expert_coord();
            switch (group) {
              case Group::kTP:
                EXPECT_TRUE(od.dp == d.dp && od.pp == d.pp);
                break;
              case Group::kDP:
                EXPECT_TRUE(od.tp == d.tp && od.pp == d.pp);
                break;
              case Group::kPP:
                EXPECT_TRUE(od.tp == d.tp && od.dp == d.dp);
                break;
              case Group::kETP:
                EXPECT_TRUE(oe.ep == e.ep && oe.edp == e.edp && oe.pp == e.pp);
                break;
              case Group::kEP:
                EXPECT_TRUE(oe.etp == e.etp && oe.edp == e.edp && oe.pp == e.pp);
                break;
              case Group::kEDP:
                EXPECT_TRUE(oe.etp == e.etp && oe.ep == e.ep && oe.pp == e.pp);
                break;
              case Group::kWorld:
                break;
            }
          }
        }
        // The groups of one kind partition the world.
        for (int g = 0; g < kNumGroups; ++g) {
          std::set<int> seen;
          for (const auto& grp : ps.all_groups(static_cast<Group>(g)))
            for (int m : grp) EXPECT_TRUE(seen.insert(m).second);
          EXPECT_EQ(static_cast<int>(seen.size()), world);
        }
      }
    }
  }
}

TEST(ParallelState, ExpertsShardsAndStages) {
  // 8 ranks, TP2 x EP2 x PP2: DP2, EDP2; 4 layers, 8 experts, I = 16.
  const ParallelSizes s = sizes(2, 2, 1, 2);
  const ModelDims dims{4, 8, 16};
  const ParallelState ps(8, 6, s, dims);  // rank 6: tp 0, dp 1, pp 1; etp 0, ep 0, edp 1, pp 1
  EXPECT_EQ(ps.dense_coord().dp, 1);
  EXPECT_EQ(ps.expert_coord().edp, 1);
  EXPECT_EQ(ps.local_layers().begin, 2);
  EXPECT_EQ(ps.local_layers().end, 4);
  EXPECT_EQ(ps.local_experts().begin, 0);
  EXPECT_EQ(ps.local_experts().end, 4);
  EXPECT_EQ(ps.global_expert(3), 3);
  EXPECT_EQ(ps.ep_rank_of_expert(5), 1);
  EXPECT_FALSE(ps.holds_expert(5));
  EXPECT_NE(error_of([&] { ps.local_expert(5); }).find("held by EP rank 1"), std::string::npos);
  // Who holds expert 5 of layer 3: stage 1, ep 1, edp 0 and 1 -> ranks 5 and 7; its producer is
  // in replica 5 % EDP = 1 (rank 7), expert 4's in replica 0 (rank 5).
  EXPECT_EQ(ps.expert_shard_rank(3, 5, 0, 0), 5);
  EXPECT_EQ(ps.expert_shard_rank(3, 5, 0, 1), 7);
  EXPECT_EQ(ps.expert_producer(3, 5), 7);
  EXPECT_EQ(ps.expert_producer(3, 4), 5);
  EXPECT_EQ(ps.expert_producer(0, 0), 0);
  EXPECT_EQ(ps.dense_holders(1), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(ps.dense_holders(2), (std::vector<int>{4, 5, 6, 7}));
  // Data: rank 6 is tp 0, dp 1 of stage 1: slot 2 of 4; its peer on stage 0 is rank 2.
  EXPECT_EQ(ps.stage_data_slot(), 2);
  EXPECT_EQ(ps.stage_data_slots(), 4);
  EXPECT_EQ(ps.stage_peer(-1), 2);
  EXPECT_NE(error_of([&] { ps.stage_peer(1); }).find("no pipeline stage 2"), std::string::npos);

  // ETP2 x EP2 on 4 ranks: rank r = etp + 2 ep; expert shard holders ordered by (edp, etp).
  const ParallelState es(4, 3, sizes(1, 2, 2, 1), {2, 4, 16});
  EXPECT_EQ(es.local_etp_shard().begin, 8);
  EXPECT_EQ(es.local_etp_shard().end, 16);
  EXPECT_EQ(es.expert_unit_rank(1, 3, 0), 2);
  EXPECT_EQ(es.expert_unit_rank(1, 3, 1), 3);
  EXPECT_EQ(es.expert_producer(1, 3), 2);
  EXPECT_EQ(es.group_index(Group::kETP), 1);  // ETP groups {0, 1}, {2, 3}
  EXPECT_EQ(es.local_tp_shard(32).size(), 32);
}

TEST(ParallelState, UnevenPipelineGivesEarlyStagesTheExtraLayer) {
  const ParallelState ps(4, 0, sizes(1, 1, 1, 4), {10, 0, 0});
  std::vector<int64_t> sizes_seen;
  int64_t next = 0;
  for (int s = 0; s < 4; ++s) {
    const IndexRange r = ps.stage_layers(s);
    EXPECT_EQ(r.begin, next);
    next = r.end;
    sizes_seen.push_back(r.size());
  }
  EXPECT_EQ(next, 10);
  EXPECT_EQ(sizes_seen, (std::vector<int64_t>{3, 3, 2, 2}));
  EXPECT_EQ(ps.stage_of_layer(6), 2);
  EXPECT_EQ(ps.dense_holders(9), (std::vector<int>{3}));
}

TEST(ParallelState, Describe) {
  EXPECT_EQ(ParallelState(8, 0, sizes(2, 2, 1, 2)).describe(),
            "world 8: TP2 x DP2 x PP2, experts ETP1 x EP2 x EDP2 x PP2");
}

TEST(Group, Names) {
  EXPECT_EQ(mask_name(group_bit(Group::kETP) | group_bit(Group::kEP)), "ETP|EP");
  EXPECT_EQ(mask_name(0), "none");
}

TEST(Deadline, ParsingAndFormatting) {
  EXPECT_EQ(parse_timeout_seconds("3", "x"), milliseconds(3000));
  EXPECT_EQ(parse_timeout_seconds("0.25", "x"), milliseconds(250));
  EXPECT_EQ(error_of([] { parse_timeout_seconds("abc", "MOEQUANT_COLLECTIVE_TIMEOUT_S"); }),
            "MOEQUANT_COLLECTIVE_TIMEOUT_S='abc' is not a positive number of seconds");
  EXPECT_NE(error_of([] { parse_timeout_seconds("-1", "x"); }), "");
  EXPECT_NE(error_of([] { parse_timeout_seconds("0", "x"); }), "");
  EXPECT_EQ(format_seconds(milliseconds(600000)), "600 s");
  EXPECT_EQ(format_seconds(milliseconds(2500)), "2.5 s");
  EXPECT_EQ(timeout_message("EP", "all_reduce_max", milliseconds(3000), 2),
            "EP all_reduce_max timed out after 3 s on rank 2 (a peer died or stalled)");
  unsetenv(kTimeoutEnvVar);
  EXPECT_EQ(default_collective_timeout(), std::chrono::minutes(10));
  setenv(kTimeoutEnvVar, "7", 1);
  EXPECT_EQ(default_collective_timeout(), milliseconds(7000));
  setenv(kTimeoutEnvVar, "soon", 1);
  EXPECT_NE(error_of([] { default_collective_timeout(); }).find("'soon'"), std::string::npos);
  unsetenv(kTimeoutEnvVar);
}

TEST(Deadline, PollUntilGivesUpAtTheDeadline) {
  const Deadline d(milliseconds(50));
  int calls = 0;
  EXPECT_FALSE(poll_until(d, [&] { return ++calls < 0; }));
  EXPECT_GE(d.elapsed_s(), 0.05);
  EXPECT_LT(d.elapsed_s(), 0.5);
  EXPECT_TRUE(poll_until(Deadline(milliseconds(50)), [] { return true; }));
}

// Sets launcher variables for one test and clears them after.
class LaunchEnv : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* v :
         {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
          "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT"})
      unsetenv(v);
  }
  void torchrun(int rank, int world) {
    setenv("RANK", std::to_string(rank).c_str(), 1);
    setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
    setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", "29511", 1);
  }
};

TEST_F(LaunchEnv, AloneIsASingleRank) {
  const LaunchInfo l = detect_launch();
  EXPECT_EQ(l.launcher, Launcher::kNone);
  auto w = bootstrap_world(DeviceKind::kCpu);
  EXPECT_EQ(std::string(w->backend()), "single");
  EXPECT_EQ(w->size(), 1);
}

TEST_F(LaunchEnv, TorchrunVariables) {
  torchrun(1, 2);
  setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);
  setenv("TORCHELASTIC_RUN_ID", "abc", 1);
  setenv("TORCHELASTIC_RESTART_COUNT", "2", 1);
  const LaunchInfo l = detect_launch();
  EXPECT_EQ(l.launcher, Launcher::kTorchrun);
  EXPECT_EQ(l.rank, 1);
  EXPECT_EQ(l.world_size, 2);
  EXPECT_EQ(l.master_addr, "127.0.0.1");
  EXPECT_EQ(l.master_port, 29511);
  EXPECT_TRUE(l.agent_store);
  EXPECT_EQ(l.run_id, "abc");
  EXPECT_EQ(l.restart_count, 2);
}

TEST_F(LaunchEnv, TorchrunOnCpuIsAClearError) {
  torchrun(0, 2);
  const std::string err = error_of([] { bootstrap_world(DeviceKind::kCpu); });
  EXPECT_NE(err.find("torchrun needs GPUs and NCCL here"), std::string::npos) << err;
  EXPECT_NE(err.find("launch/mpirun.sh -np 2"), std::string::npos) << err;
  torchrun(0, 1);  // a world of one needs nobody
  EXPECT_EQ(bootstrap_world(DeviceKind::kCpu)->size(), 1);
}

TEST_F(LaunchEnv, PartialOrMalformedTorchrunEnvironment) {
  torchrun(0, 2);
  unsetenv("MASTER_PORT");
  EXPECT_NE(error_of([] { detect_launch(); }).find("MASTER_PORT unset"), std::string::npos);
  torchrun(0, 2);
  setenv("RANK", "one", 1);
  EXPECT_EQ(error_of([] { detect_launch(); }), "RANK='one' is not an integer >= 0");
}

TEST(SingleCommunicator, CollectivesAreIdentity) {
  SingleCommunicator c("EP", 3, milliseconds(1000));
  float f[2] = {1.5f, -1.0f};
  c.all_reduce_max(f, 2);
  EXPECT_EQ(f[1], -1.0f);
  EXPECT_EQ(c.all_gather_bytes("x"), std::vector<std::string>{"x"});
  c.barrier();
  auto sub = c.split(0, 0, "SUB");
  EXPECT_EQ(sub->name(), "SUB");
  EXPECT_EQ(sub->world_rank(), 3);
  EXPECT_EQ(c.collective_count(), 4u);
  EXPECT_NE(error_of([&] { c.send(f, 4, 0); }).find("cannot send to itself"), std::string::npos);
  EXPECT_NE(error_of([&] { c.all_reduce_max_device(f, 1); }).find("host memory only"),
            std::string::npos);
  agree_on_error(c, "");
  EXPECT_EQ(error_of([&] { agree_on_error(c, "disk full"); }), "rank 3: disk full");
  c.abort();
  EXPECT_TRUE(c.failed());
  EXPECT_NE(error_of([&] { c.barrier(); }).find("unusable"), std::string::npos);
}

TEST(AmaxSync, WorldOfOneIssuesNoCollective) {
  ProcessGroups groups = ProcessGroups::split_from(std::make_unique<SingleCommunicator>(),
                                                   ParallelState(1, 0, ParallelSizes{}));
  std::vector<float> a{2.0f}, u{kUncalibratedAmax};
  const uint32_t m = group_bit(Group::kETP) | group_bit(Group::kEP);
  const AmaxSyncReport r = sync_amax({{"b", &a, m}, {"a", &u, m}}, groups);
  EXPECT_EQ(r.total_collectives(), 0u);
  EXPECT_EQ(r.uncalibrated, std::vector<std::string>{"a"});
  EXPECT_EQ(a, std::vector<float>{2.0f});
  std::vector<float> bad{-2.0f};
  EXPECT_NE(error_of([&] {
              sync_amax({{"q", &bad, m}}, groups);
            }).find("has amax -2"),
            std::string::npos);
}

}  // namespace
}  // namespace moequant::parallel::testing
