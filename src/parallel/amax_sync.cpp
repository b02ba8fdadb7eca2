#include "moequant/parallel/amax_sync.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "list_digest.h"
#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/parallel/error_agreement.h"

namespace moequant::parallel {

namespace {

uint32_t sync_mask() {
  uint32_t m = 0;
  for (Group g : kAmaxSyncOrder) m |= group_bit(g);
  return m;
}

// The first invalid value of `e` ("" if none).
std::string value_error(const AmaxEntry& e) {
  for (size_t i = 0; i < e.values->size(); ++i) {
    const float v = (*e.values)[i];
    if (!(std::isfinite(v) && v >= 0.0f) && v != kUncalibratedAmax)
      return str_cat("amax sync: quantizer '", e.name, "' has amax ", v, " at index ", i,
                     " (expected a finite value >= 0, or ", kUncalibratedAmax,
                     " for uncalibrated)");
  }
  return "";
}

// Local problems with this rank's input ("" if none). `order` sorts the entries by name.
std::string validate(const AmaxEntry* entries, const std::vector<size_t>& order) {
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
    const std::string bad = value_error(e);
    if (!bad.empty()) return bad;
  }
  return "";
}

}  // namespace

// One group of kAmaxSyncOrder with more than one rank, and this rank's entries reduced over it.
struct detail::AmaxActiveGroup {
  Group group;
  size_t stats_index;
  std::vector<size_t> members;  // entry indices, in name order
  ListDigest digest;
  std::vector<std::vector<int>> all_groups;  // every group of this kind, for the check's slots
  size_t my_index = 0;                       // which of them is this rank's
};

namespace {

using ActiveGroup = detail::AmaxActiveGroup;

std::string mismatch_message(const ActiveGroup& a, const std::vector<int>& ranks,
                             const DigestVerdict& v) {
  const std::string head =
      str_cat("amax sync over ", group_name(a.group), ": the quantizer lists differ between the ",
              group_name(a.group), " ranks (world ranks ", shape_string(ranks), "): ");
  const std::string tail = "; every rank must register the same quantizers for each group";
  if (!v.entries_agree)
    return str_cat(head, "they hold ", v.min_entries, " to ", v.max_entries,
                   " quantizers reduced over ", group_name(a.group), " (count mismatch)", tail);
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
      if (!v.agree()) throw AgreedError(mismatch_message(a, a.all_groups[i], v));
    }
  }
}

}  // namespace

uint64_t AmaxSyncReport::total_collectives() const {
  uint64_t n = check_collectives;
  for (const auto& g : groups) n += g.collectives;
  return n;
}

AmaxSyncPlan::AmaxSyncPlan(std::vector<AmaxEntry> entries, const ProcessGroups& groups)
    : owned_(std::move(entries)), entries_(owned_.data()), size_(owned_.size()), groups_(&groups) {
  prepare();  // a moved vector keeps its buffer, so entries_ stays valid when the plan moves
}

AmaxSyncPlan::AmaxSyncPlan(const AmaxEntry* entries, size_t size, const ProcessGroups& groups)
    : entries_(entries), size_(size), groups_(&groups) {
  prepare();
}

void AmaxSyncPlan::prepare() {
  const ProcessGroups& groups = *groups_;
  const ParallelState& state = groups.state();
  order_.resize(size_);
  std::iota(order_.begin(), order_.end(), size_t{0});
  const auto by_name = [&](size_t a, size_t b) { return entries_[a].name < entries_[b].name; };
  if (!std::is_sorted(order_.begin(), order_.end(), by_name))  // callers may hand them in sorted
    std::stable_sort(order_.begin(), order_.end(), by_name);
  const std::string local_error = validate(entries_, order_);

  for (Group g : kAmaxSyncOrder) {
    AmaxSyncGroupStats stats;
    stats.group = g;
    stats.group_size = state.size(g);
    if (stats.group_size > 1) {
      ActiveGroup a{g, layout_.groups.size(), {}, {}, state.all_groups(g), 0};
      const int leader = state.group_ranks(g).front();
      while (a.all_groups[a.my_index].front() != leader) ++a.my_index;
      if (local_error.empty()) {
        for (size_t idx : order_) {
          if (!(entries_[idx].reduce_over & group_bit(g))) continue;
          a.members.push_back(idx);
          a.digest.add(entries_[idx].name, entries_[idx].values->size());
        }
      }
      stats.entries = a.members.size();
      stats.values = a.digest.values;
      active_.push_back(std::move(a));
    }
    layout_.groups.push_back(stats);
  }

  if (groups.world().size() > 1) {
    check_lists(active_, local_error, groups);
    check_collectives_ = 1;
  } else if (!local_error.empty()) {
    throw AgreedError(local_error);  // a world of one agrees with itself
  }
  offset_.assign(size_ + 1, 0);
  for (size_t i = 0; i < size_; ++i) offset_[i + 1] = offset_[i] + entries_[i].values->size();
}

AmaxSyncPlan::~AmaxSyncPlan() = default;
AmaxSyncPlan::AmaxSyncPlan(AmaxSyncPlan&&) noexcept = default;
AmaxSyncPlan& AmaxSyncPlan::operator=(AmaxSyncPlan&&) noexcept = default;

AmaxSyncReport AmaxSyncPlan::run() {
  // Values may have changed since the plan was made: check them without another collective.
  std::string local_error;
  for (size_t idx : order_) {
    const AmaxEntry& e = entries_[idx];
    if (e.values->size() != offset_[idx + 1] - offset_[idx])
      local_error =
          str_cat("amax sync: quantizer '", e.name, "' has ", e.values->size(),
                  " amax values, but ", offset_[idx + 1] - offset_[idx], " when the plan was made");
    else
      local_error = value_error(e);
    if (!local_error.empty()) break;
  }

  // One flat copy of every value, so that a failure half-way leaves every amax untouched. A
  // rank with bad input ships sentinels, never its bad values.
  std::vector<float> work(offset_.back(), kUncalibratedAmax);
  if (local_error.empty()) {
    for (size_t i = 0; i < size_; ++i)
      std::copy(entries_[i].values->begin(), entries_[i].values->end(),
                work.begin() + static_cast<std::ptrdiff_t>(offset_[i]));
  }

  // The last float of each buffer carries the highest failing world rank + 1 seen so far.
  float failing = local_error.empty() ? 0.0f : static_cast<float>(groups_->state().rank() + 1);
  AmaxSyncReport report = layout_;
  std::vector<float> buf;
  for (const ActiveGroup& a : active_) {
    if (a.members.empty()) continue;  // every member agreed its list is empty: all skip alike
    buf.resize(a.digest.values + 1);
    float* p = buf.data();
    for (size_t idx : a.members)
      p = std::copy(work.data() + offset_[idx], work.data() + offset_[idx + 1], p);
    buf.back() = failing;
    groups_->get(a.group).all_reduce_max(buf.data(), buf.size());
    failing = buf.back();
    p = buf.data();
    for (size_t idx : a.members) {
      const size_t n = offset_[idx + 1] - offset_[idx];
      std::copy(p, p + n, work.data() + offset_[idx]);
      p += n;
    }
    report.groups[a.stats_index].collectives = 1;
  }

  // Every rank saw the same reduced flag: these errors are known to all of them.
  if (!local_error.empty())
    throw AgreedError(str_cat("rank ", groups_->state().rank(), ": ", local_error));
  if (failing != 0.0f)
    throw AgreedError(str_cat("amax sync: rank ", static_cast<int>(failing) - 1,
                              " reported invalid amax input (see its error); no amax was changed "
                              "on rank ",
                              groups_->state().rank()));

  for (size_t i = 0; i < size_; ++i)
    std::copy(work.data() + offset_[i], work.data() + offset_[i + 1], entries_[i].values->begin());
  report.entries = size_;
  for (size_t idx : order_) {
    const auto& v = *entries_[idx].values;
    if (std::find(v.begin(), v.end(), kUncalibratedAmax) != v.end())
      report.uncalibrated.push_back(entries_[idx].name);
  }
  return report;
}

AmaxSyncReport sync_amax(const std::vector<AmaxEntry>& entries, const ProcessGroups& groups) {
  AmaxSyncPlan plan(entries.data(), entries.size(), groups);
  AmaxSyncReport report = plan.run();
  report.check_collectives = plan.check_collectives();
  return report;
}

}  // namespace moequant::parallel
