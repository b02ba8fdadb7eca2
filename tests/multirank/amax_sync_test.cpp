// Batched amax sync on every layout of the world size, against the single-rank answer computed
// on the full model; consistency errors on every rank; the collective count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "moequant/common/error.h"
#include "moequant/parallel/amax_sync.h"
#include "mpi_test_util.h"
#include "test_model.h"

namespace moequant::parallel::testing {
namespace {

// Entries pointing at each quantizer's `local` vector, synced in place.
std::vector<AmaxEntry> entries_of(std::vector<RankQuantizer>& qs) {
  std::vector<AmaxEntry> out;
  for (auto& q : qs) out.push_back({q.name, &q.local, q.reduce_over});
  return out;
}

// The exact bits of an amax vector, printable.
std::string hex(const std::vector<float>& v) {
  std::string out;
  char buf[16];
  for (float f : v) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof(u));
    std::snprintf(buf, sizeof(buf), "%08x,", u);
    out += buf;
  }
  return out;
}

TEST(AmaxSync, MatchesSingleRankOnEveryLayout) {
  const auto layouts = layouts_for(world_size());
  if (layouts.empty()) GTEST_SKIP() << "no layout for " << world_size() << " ranks";
  const ModelSpec model;
  for (const Layout& layout : layouts) {
    SCOPED_TRACE("layout " + layout.name);
    ProcessGroups groups = make_groups(layout, model.dims());
    const ParallelState& ps = groups.state();
    std::vector<RankQuantizer> qs = rank_quantizers(model, ps);
    ASSERT_FALSE(qs.empty());

    std::map<Group, uint64_t> before;
    for (int g = 0; g < kNumGroups; ++g)
      before[static_cast<Group>(g)] = groups.get(static_cast<Group>(g)).collective_count();

    const AmaxSyncReport report = sync_amax(entries_of(qs), groups);

    // Every value equals the single-rank answer, bit for bit (MAX is exact).
    std::vector<std::string> expect_uncalibrated;
    for (const auto& q : qs) {
      EXPECT_EQ(q.local, q.expected) << q.name;
      if (std::find(q.expected.begin(), q.expected.end(), kUncalibratedAmax) != q.expected.end())
        expect_uncalibrated.push_back(q.name);
    }
    std::sort(expect_uncalibrated.begin(), expect_uncalibrated.end());
    EXPECT_EQ(report.uncalibrated, expect_uncalibrated);
    // Both kinds of uncalibrated quantizers are present on the ranks holding layers 1 and 3.
    if (ps.holds_layer(model.layers - 1)) {
      EXPECT_NE(std::find(report.uncalibrated.begin(), report.uncalibrated.end(),
                          "layers.3.mlp.experts.linear_fc1.input_quantizer"),
                report.uncalibrated.end());
    }

    // One collective per group of size > 1 (all of them are used by this model), plus the
    // world's consistency check.
    size_t groups_used = 0;
    for (const AmaxSyncGroupStats& st : report.groups) {
      const uint64_t issued = groups.get(st.group).collective_count() - before[st.group];
      const uint64_t want = ps.size(st.group) > 1 ? 1 : 0;
      EXPECT_EQ(issued, want) << group_name(st.group);
      EXPECT_EQ(st.collectives, want) << group_name(st.group);
      groups_used += want;
    }
    EXPECT_EQ(groups.world().collective_count() - before[Group::kWorld], 1u);
    EXPECT_EQ(report.total_collectives(), groups_used + 1);

    // Shared quantizers agree across EP, and every holder of a reduced quantizer holds the same
    // bits.
    std::string shared;
    for (const auto& q : qs)
      if (q.shared_over_ep) shared += q.name + "=" + hex(q.local) + "\n";
    for (const auto& s : groups.get(Group::kEP).all_gather_bytes(shared)) EXPECT_EQ(s, shared);
    // Every reduced quantizer held here is compared with every other rank that holds it; one
    // whose reduction group has other members must have been compared with at least one of them.
    std::map<std::string, std::string> mine;
    std::map<std::string, bool> has_peers;
    std::string lines;
    for (const auto& q : qs) {
      if (q.reduce_over == 0) continue;  // disjoint shards under one name: legitimately differ
      mine[q.name] = hex(q.local);
      lines += q.name + "=" + mine[q.name] + "\n";
      for (Group g : kAmaxSyncOrder)
        if ((q.reduce_over & group_bit(g)) && groups.get(g).size() > 1) has_peers[q.name] = true;
    }
    std::map<std::string, int> compared_elsewhere;
    const std::vector<std::string> all = groups.world().all_gather_bytes(lines);
    for (int r = 0; r < static_cast<int>(all.size()); ++r) {
      if (r == groups.world().rank()) continue;
      const std::string& other = all[r];
      size_t pos = 0;
      for (size_t nl; (nl = other.find('\n', pos)) != std::string::npos; pos = nl + 1) {
        const std::string line = other.substr(pos, nl - pos);
        const size_t eq = line.find('=');
        auto it = mine.find(line.substr(0, eq));
        if (it == mine.end()) continue;
        EXPECT_EQ(line.substr(eq + 1), it->second) << it->first << " on rank " << r;
        ++compared_elsewhere[it->first];
      }
    }
    for (const auto& [name, peers] : has_peers)
      EXPECT_GE(compared_elsewhere[name], 1) << name << " has peers but no other rank holds it";
  }
}

// Every rank holds the same base list; `mutate` changes it on the last rank only.
void expect_mismatch(const std::function<void(std::vector<RankQuantizer>&)>& mutate,
                     const std::string& kind) {
  const Layout layout = ep_world_layout(world_size());
  ProcessGroups groups = make_groups(layout, ModelSpec().dims());
  std::vector<RankQuantizer> qs = rank_quantizers(ModelSpec(), groups.state());
  if (world_rank() == world_size() - 1) mutate(qs);
  const auto untouched = qs;
  const uint64_t ep_before = groups.get(Group::kEP).collective_count();
  const std::string err = error_of([&] { sync_amax(entries_of(qs), groups); });
  // Every rank throws, with the same message, and no value moved.
  EXPECT_NE(err.find("amax sync over EP"), std::string::npos) << err;
  EXPECT_NE(err.find("quantizer lists differ"), std::string::npos) << err;
  EXPECT_NE(err.find(kind), std::string::npos) << err;
  const auto all = groups.world().all_gather_bytes(err);
  for (const auto& e : all) EXPECT_EQ(e, err);
  for (size_t i = 0; i < qs.size(); ++i) EXPECT_EQ(qs[i].local, untouched[i].local);
  EXPECT_EQ(groups.get(Group::kEP).collective_count(), ep_before) << "values must not move";
  // The communicators are still usable afterwards.
  const AmaxSyncReport ok = sync_amax({}, groups);
  EXPECT_EQ(ok.total_collectives(), 1u);
}

TEST(AmaxSync, ExtraQuantizerOnOneRankFailsEverywhere) {
  expect_mismatch(
      [](std::vector<RankQuantizer>& qs) {
        qs.push_back({"layers.0.extra.weight_quantizer", group_bit(Group::kEP), {1.0f}, {1.0f}});
      },
      "count mismatch");
}

TEST(AmaxSync, MissingListOnOneRankFailsEverywhere) {
  // The seed PR's bug: one rank's grouped linear yields no quantizers at all.
  expect_mismatch(
      [](std::vector<RankQuantizer>& qs) {
        qs.erase(std::remove_if(qs.begin(), qs.end(),
                                [](const RankQuantizer& q) { return q.shared_over_ep; }),
                 qs.end());
      },
      "count mismatch");
}

TEST(AmaxSync, RenamedQuantizerFailsEverywhere) {
  expect_mismatch(
      [](std::vector<RankQuantizer>& qs) {
        for (auto& q : qs)
          if (q.shared_over_ep) {
            q.name += "_renamed";
            break;
          }
      },
      "name mismatch");
}

TEST(AmaxSync, ResizedQuantizerFailsEverywhere) {
  expect_mismatch(
      [](std::vector<RankQuantizer>& qs) {
        for (auto& q : qs)
          if (q.shared_over_ep) {
            q.local.push_back(0.5f);
            break;
          }
      },
      "size mismatch");
}

TEST(AmaxSync, MismatchInsideOneTpGroupFailsOnAllRanks) {
  // TP2xEP2 on 4 ranks: the lists differ inside TP group [0, 1] only; ranks 2 and 3 share no
  // group with the culprit's TP group yet must fail too instead of moving on alone.
  if (world_size() != 4) GTEST_SKIP() << "needs 4 ranks";
  const Layout layout = layouts_for(4)[1];
  ASSERT_EQ(layout.name, "TP2xEP2");
  ProcessGroups groups = make_groups(layout, ModelSpec().dims());
  std::vector<RankQuantizer> qs = rank_quantizers(ModelSpec(), groups.state());
  if (world_rank() == 1) qs.push_back({"layers.0.tp_only", group_bit(Group::kTP), {2.0f}, {2.0f}});
  const std::string err = error_of([&] { sync_amax(entries_of(qs), groups); });
  EXPECT_NE(err.find("amax sync over TP"), std::string::npos) << err;
  EXPECT_NE(err.find("world ranks [0, 1]"), std::string::npos) << err;
  EXPECT_NE(err.find("count mismatch"), std::string::npos) << err;
}

TEST(AmaxSync, InvalidAmaxOnOneRankFailsEverywhereNamingIt) {
  const Layout layout = ep_world_layout(world_size());
  ProcessGroups groups = make_groups(layout, ModelSpec().dims());
  std::vector<RankQuantizer> qs = rank_quantizers(ModelSpec(), groups.state());
  const int culprit = world_size() - 1;
  const std::string name = "layers.0.mlp.experts.linear_fc1.weight_quantizer";  // on every rank
  for (auto& q : qs)
    if (q.name == name && world_rank() == culprit) q.local[0] = std::nanf("");
  const std::string err = error_of([&] { sync_amax(entries_of(qs), groups); });
  EXPECT_EQ(err, "rank " + std::to_string(culprit) + ": amax sync: quantizer '" + name +
                     "' has amax nan at index 0 (expected a finite value >= 0, or -1 for "
                     "uncalibrated)");
}

TEST(AmaxSync, DuplicateNameAndBadMaskAreRejected) {
  ProcessGroups groups = make_groups(ep_world_layout(world_size()));
  std::vector<float> a{1.0f}, b{2.0f};
  std::string err = error_of([&] {
    sync_amax({{"q", &a, group_bit(Group::kEP)}, {"q", &b, group_bit(Group::kEP)}}, groups);
  });
  EXPECT_NE(err.find("quantizer name 'q' appears twice"), std::string::npos) << err;
  err = error_of([&] { sync_amax({{"q", &a, group_bit(Group::kPP)}}, groups); });
  EXPECT_NE(err.find("asks to reduce over PP"), std::string::npos) << err;
}

TEST(AmaxSync, SentinelResolvesToCalibratedPeer) {
  // Only the last rank calibrated the quantizer: everyone ends with its value; a quantizer no
  // rank calibrated stays -1 and is reported uncalibrated on every rank alike.
  ProcessGroups groups = make_groups(ep_world_layout(world_size()));
  const bool last = world_rank() == world_size() - 1;
  std::vector<float> some{last ? 3.5f : kUncalibratedAmax, kUncalibratedAmax};
  std::vector<float> none{kUncalibratedAmax};
  const uint32_t ep = group_bit(Group::kEP);
  const AmaxSyncReport r = sync_amax({{"some", &some, ep}, {"none", &none, ep}}, groups);
  EXPECT_EQ(some, (std::vector<float>{3.5f, kUncalibratedAmax}));
  EXPECT_EQ(none, std::vector<float>{kUncalibratedAmax});
  EXPECT_EQ(r.uncalibrated, (std::vector<std::string>{"none", "some"}));
}

TEST(AmaxSyncPlan, EachRunIsOneCollectivePerGroup) {
  // QAT-style: the plan is made (and checked) once, then synced at every step.
  const ModelSpec model;
  for (const Layout& layout : layouts_for(world_size())) {
    SCOPED_TRACE("layout " + layout.name);
    ProcessGroups groups = make_groups(layout, model.dims());
    const ParallelState& ps = groups.state();
    std::vector<RankQuantizer> qs = rank_quantizers(model, ps);
    const auto observed = qs;
    AmaxSyncPlan plan(entries_of(qs), groups);
    EXPECT_EQ(plan.check_collectives(), world_size() > 1 ? 1u : 0u);
    for (int step = 1; step <= 3; ++step) {
      // New observations each step: every calibrated amax scaled by the step.
      for (size_t i = 0; i < qs.size(); ++i)
        for (size_t j = 0; j < qs[i].local.size(); ++j) {
          const float v = observed[i].local[j];
          qs[i].local[j] = v == kUncalibratedAmax ? v : v * static_cast<float>(step);
        }
      const uint64_t world_before = groups.world().collective_count();
      const AmaxSyncReport r = plan.run();
      EXPECT_EQ(groups.world().collective_count(), world_before);  // no check after the first
      size_t used = 0;
      for (const auto& st : r.groups) used += ps.size(st.group) > 1 ? 1 : 0;
      EXPECT_EQ(r.total_collectives(), used);
      for (size_t i = 0; i < qs.size(); ++i)
        for (size_t j = 0; j < qs[i].local.size(); ++j) {
          const float e = qs[i].expected[j];
          EXPECT_EQ(qs[i].local[j], e == kUncalibratedAmax ? e : e * static_cast<float>(step))
              << qs[i].name << " step " << step;
        }
    }
  }
}

TEST(AmaxSyncPlan, BadValueAtRunTimeFailsEveryRankItTouches) {
  ProcessGroups groups = make_groups(ep_world_layout(world_size()));
  const uint32_t ep = group_bit(Group::kEP);
  std::vector<float> a{1.0f}, b{static_cast<float>(world_rank())};
  AmaxSyncPlan plan({{"a", &a, ep}, {"b", &b, ep}}, groups);
  const int culprit = world_size() - 1;
  if (world_rank() == culprit) b[0] = -3.0f;
  const std::vector<float> before_b = b;
  const std::string err = error_of([&] { plan.run(); });
  if (world_rank() == culprit) {
    EXPECT_EQ(err, "rank " + std::to_string(culprit) +
                       ": amax sync: quantizer 'b' has amax -3 at index 0 (expected a finite "
                       "value >= 0, or -1 for uncalibrated)");
  } else {
    EXPECT_EQ(err, "amax sync: rank " + std::to_string(culprit) +
                       " reported invalid amax input (see its error); no amax was changed on "
                       "rank " +
                       std::to_string(world_rank()));
  }
  EXPECT_EQ(a, std::vector<float>{1.0f});
  EXPECT_EQ(b, before_b);
  // Repaired, the same plan runs again.
  b[0] = static_cast<float>(world_rank());
  plan.run();
  EXPECT_EQ(b, std::vector<float>{static_cast<float>(world_size() - 1)});
}

}  // namespace
}  // namespace moequant::parallel::testing
