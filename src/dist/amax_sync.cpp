#include "moequant/dist/amax_sync.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "list_digest.h"
#include "moequant/core/error.h"
#include "moequant/dist/error_agreement.h"

namespace moequant::dist {

namespace {

uint32_t sync_mask() {
  uint32_t m = 0;
  for (Group g : kAmaxSyncOrder) m |= group_bit(g);
  return m;
}

// Local problems with this rank's input ("" if none). `order` sorts the entries by name.
std::string validate(const std::vector<AmaxEntry>& entries, const std::vector<size_t>& order) {
  for (size_t k = 0; k < order.size(); ++k) {
    const AmaxEntry& e = entries[order[k]];
    if (k > 0 && entries[order[k - 1]].name == e.name)
      return str_cat("amax sync: quantizer name '", e.name, "' appears twice");
    if (e.values == nullptr) return str_cat("amax sync: quantizer '", e.name, "' has no amax");
    if (e.values->empty()) return str_cat("amax sync: quantizer '", e.name, "' has an empty amax");
    if (e.reduce_over & ~sync_mask())
      return str_cat("amax sync: quantizer '", e.name, "' asks to reduce over ",
                     mask_name(e.reduce_over & ~sync_mask()),
                     "; amax is reduced over TP, ETP, EP, DP and EDP only");
    for (size_t i = 0; i < e.values->size(); ++i) {
      const float v = (*e.values)[i];
      if (!(std::isfinite(v) && v >= 0.0f) && v != kUncalibratedAmax)
        return str_cat("amax sync: quantizer '", e.name, "' has amax ", v, " at index ", i,
                       " (expected a finite value >= 0, or ", kUncalibratedAmax,
                       " for uncalibrated)");
    }
  }
  return "";
}

std::string join(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += str_cat(i ? ", " : "", v[i]);
  return s + "]";
}

// One group of kAmaxSyncOrder with more than one rank, and this rank's entries reduced over it.
struct ActiveGroup {
  Group group;
  size_t stats_index;
  std::vector<size_t> members;  // entry indices, in name order
  ListDigest digest;
  std::vector<std::vector<int>> all_groups;  // every group of this kind, for the check's slots
  size_t my_index = 0;                       // which of them is this rank's
};

std::string mismatch_message(const ActiveGroup& a, const std::vector<int>& ranks,
                             const DigestVerdict& v) {
  const std::string head =
      str_cat("amax sync over ", group_name(a.group), ": the quantizer lists differ between the ",
              group_name(a.group), " ranks (world ranks ", join(ranks), "): ");
  const std::string tail = "; every rank must register the same quantizers for each group";
  if (!v.entries_agree)
    return str_cat(head, "they hold ", v.min_entries, " to ", v.max_entries, " quantizers reduced over ",
                   group_name(a.group), " (count mismatch)", tail);
  if (!v.values_agree)
    return str_cat(head, "they hold the same number of quantizers (", v.max_entries, ") but ",
                   v.min_values, " to ", v.max_values, " amax values (size mismatch)", tail);
  return str_cat(head, "they hold the same number of quantizers (", v.max_entries,
                 ") with different names (name mismatch)", tail);
}

// The world collective that proves every group's members agree before values move.
void check_lists(const std::vector<ActiveGroup>& active, const std::string& local_error,
                 const ProcessGroups& groups) {
  Communicator& world = groups.world();
  size_t n = 1;
  for (const auto& a : active) n += a.all_groups.size() * kDigestFloats;
  std::vector<float> buf(n);
  buf[0] = local_error.empty() ? 0.0f : static_cast<float>(groups.state().rank() + 1);
  float* slot = buf.data() + 1;
  for (const auto& a : active) {
    for (size_t i = 0; i < a.all_groups.size(); ++i, slot += kDigestFloats) {
      if (i == a.my_index)
        encode_digest(a.digest, slot);
      else
        encode_absent(slot);
    }
  }
  world.all_reduce_max(buf.data(), buf.size());

  // Every rank reads the same reduced buffer: every decision below is taken alike everywhere.
  if (buf[0] != 0.0f) {
    agree_on_error(world, local_error);  // throws "rank R: <message>" on every rank
    MQ_THROW("amax sync: a rank reported invalid input but agree_on_error saw none");
  }
  slot = buf.data() + 1;
  for (const auto& a : active) {
    for (size_t i = 0; i < a.all_groups.size(); ++i, slot += kDigestFloats) {
      const DigestVerdict v = decode_digest(slot);
      if (!v.agree()) throw Error(mismatch_message(a, a.all_groups[i], v));
    }
  }
}

}  // namespace

uint64_t AmaxSyncReport::total_collectives() const {
  uint64_t n = check_collectives;
  for (const auto& g : groups) n += g.collectives;
  return n;
}

size_t AmaxSyncReport::total_values() const {
  size_t n = 0;
  for (const auto& g : groups) n += g.values;
  return n;
}

AmaxSyncReport sync_amax(const std::vector<AmaxEntry>& entries, const ProcessGroups& groups) {
  const ParallelState& state = groups.state();
  std::vector<size_t> order(entries.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return entries[a].name < entries[b].name; });
  const std::string local_error = validate(entries, order);

  AmaxSyncReport report;
  std::vector<ActiveGroup> active;
  for (Group g : kAmaxSyncOrder) {
    AmaxSyncGroupStats stats;
    stats.group = g;
    stats.group_size = state.size(g);
    if (stats.group_size > 1) {
      ActiveGroup a{g, report.groups.size(), {}, {}, state.all_groups(g), 0};
      const int leader = state.group_ranks(g).front();
      while (a.all_groups[a.my_index].front() != leader) ++a.my_index;
      if (local_error.empty()) {
        for (size_t idx : order) {
          if (!(entries[idx].reduce_over & group_bit(g))) continue;
          a.members.push_back(idx);
          a.digest.add(entries[idx].name, entries[idx].values->size());
        }
      }
      stats.entries = a.members.size();
      stats.values = a.digest.values;
      active.push_back(std::move(a));
    }
    report.groups.push_back(stats);
  }

  if (groups.world().size() > 1) {
    check_lists(active, local_error, groups);
    report.check_collectives = 1;
  } else if (!local_error.empty()) {
    throw Error(local_error);
  }

  // Work on copies so that a failure half-way leaves every amax untouched.
  std::vector<std::vector<float>> work(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) work[i] = *entries[i].values;

  std::vector<float> buf;
  for (const ActiveGroup& a : active) {
    if (a.members.empty()) continue;  // every member agreed its list is empty: all skip alike
    buf.clear();
    for (size_t idx : a.members) buf.insert(buf.end(), work[idx].begin(), work[idx].end());
    groups.get(a.group).all_reduce_max(buf.data(), buf.size());
    const float* p = buf.data();
    for (size_t idx : a.members) {
      std::copy(p, p + work[idx].size(), work[idx].begin());
      p += work[idx].size();
    }
    report.groups[a.stats_index].collectives = 1;
  }

  for (size_t i = 0; i < entries.size(); ++i) *entries[i].values = std::move(work[i]);
  for (size_t idx : order) {
    const auto& v = *entries[idx].values;
    if (std::find(v.begin(), v.end(), kUncalibratedAmax) != v.end())
      report.uncalibrated.push_back(entries[idx].name);
  }
  return report;
}

}  // namespace moequant::dist
