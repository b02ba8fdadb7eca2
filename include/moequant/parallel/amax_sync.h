// Batched amax synchronization (docs/design.md, "Amax synchronization"). Torch-free: quantizers
// hand in their amax as host float vectors.
//
// For each group in kAmaxSyncOrder (TP, ETP, EP, DP, EDP) whose size is > 1, every entry whose
// reduce_over mask includes the group is taken in name order and all their values travel in ONE
// all_reduce_max on that group's communicator. MAX over ETP then over EP equals MAX over ETP x EP.
//
// Uncalibrated values hold kUncalibratedAmax (-1): MAX with a calibrated peer yields the peer's
// value; a value still -1 afterwards was uncalibrated on every rank, which every rank sees alike.
//
// Consistency: before any value moves, ONE all_reduce_max over the world compares, for every
// group, the members' lists (number of entries, number of values, hash of the sorted names and
// sizes, each as +x and -x so that max(x) != -max(-x) reveals disagreement) and a flag for
// invalid local input. This is a separate collective on purpose: neither MPI nor NCCL allows the
// members of one collective to pass different counts, and in practice it crashes or hangs
// (checked with Open MPI 4.1: 19 vs 20 floats crashes the job, 19 vs 5019 hangs), so the sizes
// must be known to agree before the values' collective is issued.
// On any disagreement no value collective is issued, no amax is changed, and every rank throws
// the same moequant::Error naming the group and the kind of mismatch.
//
// Collectives: 1 on the world (when it has > 1 rank) + 1 per group of size > 1 that has entries
// (the members agree on that in the check), whatever the number of quantizers. When some rank's
// input is invalid, agree_on_error() follows on the world (2 more) and no value moves.
// Order: entries are packed sorted by name (already sorted input skips the sort).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "moequant/parallel/group.h"
#include "moequant/parallel/process_groups.h"

namespace moequant::parallel {

// Sentinel of a quantizer that observed nothing (an expert that got no tokens).
constexpr float kUncalibratedAmax = -1.0f;

// The groups reduced, in this order on every rank.
constexpr std::array<Group, 5> kAmaxSyncOrder = {Group::kTP, Group::kETP, Group::kEP, Group::kDP,
                                                 Group::kEDP};

struct AmaxEntry {
  std::string name;            // unique per rank; the same on every rank holding the quantizer
  std::vector<float>* values;  // per-tensor: 1 value; per-channel: one per row. Each value is
                               // >= 0 (finite) or kUncalibratedAmax.
  uint32_t reduce_over;        // group_bit() of TP, ETP, EP, DP, EDP (others are an error)
};

struct AmaxSyncGroupStats {
  Group group;
  int group_size = 1;
  uint64_t collectives = 0;  // collectives issued on this group's communicator (0 or 1)
  size_t entries = 0;        // entries reduced over this group
  size_t values = 0;         // floats in its one collective
};

struct AmaxSyncReport {
  std::vector<AmaxSyncGroupStats> groups;  // one per group of kAmaxSyncOrder, in that order
  uint64_t check_collectives = 0;          // world collectives of the consistency check (0 or 1)
  std::vector<std::string> uncalibrated;   // sorted names still holding kUncalibratedAmax
  size_t entries = 0;                      // entries (quantizers) this rank took part with
  uint64_t total_collectives() const;
};

// Collective over every communicator of `groups`: all ranks call it, each with its own entries.
// Updates *values in place (all or nothing); throws moequant::AgreedError on every rank alike when
// the lists disagree or some rank's input is invalid ("rank R: <problem>"). Same as
// AmaxSyncPlan(entries, groups).run(), with the plan's check counted in the report.
AmaxSyncReport sync_amax(const std::vector<AmaxEntry>& entries, const ProcessGroups& groups);

namespace detail {
struct AmaxActiveGroup;  // one group of a plan; defined in amax_sync.cpp
}  // namespace detail

// A sync prepared once for a fixed list of quantizers, for loops that sync again and again (QAT,
// or the benchmark): the constructor validates the list, sorts it and runs the consistency check
// (the world collective above); each run() then costs exactly one all_reduce_max per group of
// size > 1 with entries, and no sorting or hashing.
class AmaxSyncPlan {
 public:
  // Collective over the world. Throws on every rank alike as sync_amax does. The plan keeps the
  // entries and a pointer to `groups`: both, and the entries' vectors, must outlive it; the
  // vectors keep their sizes, their values may change between runs.
  AmaxSyncPlan(std::vector<AmaxEntry> entries, const ProcessGroups& groups);
  ~AmaxSyncPlan();
  AmaxSyncPlan(AmaxSyncPlan&&) noexcept;
  AmaxSyncPlan& operator=(AmaxSyncPlan&&) noexcept;

  // Collective over the groups. Values that became invalid since the plan was made (NaN,
  // negative, a changed size) cannot be checked by another collective here: the culprit sends a
  // flag in the same collectives instead (its own values replaced by the sentinel), so every
  // rank whose result it touched, directly or through a later group, throws
  // "amax sync: rank R reported invalid amax input ..." and changes nothing; the culprit throws
  // its own message. Agree on errors at the next step boundary (agree_on_error) as usual.
  AmaxSyncReport run();

  // World collectives the constructor's check issued (0 or 1).
  uint64_t check_collectives() const { return check_collectives_; }

 private:
  friend AmaxSyncReport sync_amax(const std::vector<AmaxEntry>&, const ProcessGroups&);
  // Borrows `entries` (sync_amax: no copy of 18k names for a one-shot sync).
  AmaxSyncPlan(const AmaxEntry* entries, size_t size, const ProcessGroups& groups);
  void prepare();

  std::vector<AmaxEntry> owned_;        // empty when borrowing
  const AmaxEntry* entries_ = nullptr;  // owned_.data() or the borrowed array
  size_t size_ = 0;
  const ProcessGroups* groups_;
  std::vector<size_t> order_;   // entry indices by name
  std::vector<size_t> offset_;  // start of each entry's values in the flat work buffer
  std::vector<detail::AmaxActiveGroup> active_;  // groups of size > 1, in kAmaxSyncOrder
  AmaxSyncReport layout_;  // the per-group sizes and entry counts, collectives zeroed
  uint64_t check_collectives_ = 0;
};

}  // namespace moequant::parallel
