// Batched amax synchronization (DESIGN.md, "Amax synchronization"). Torch-free: quantizers hand
// in their amax as host float vectors.
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
// invalid local input. This is a separate collective on purpose: MPI and NCCL collectives whose
// members pass different counts crash or hang (checked with Open MPI 4.1: 19 vs 20 floats
// crashes, 19 vs 5019 hangs), so sizes must be known to agree before the values' collective.
// On any disagreement no value collective is issued, no amax is changed, and every rank throws
// the same moequant::Error naming the group and the kind of mismatch.
//
// Collectives: 1 on the world (when it has > 1 rank) + 1 per group of size > 1, whatever the
// number of quantizers. On failure of local input, one more all_gather of the error messages.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "moequant/dist/group.h"
#include "moequant/dist/process_groups.h"

namespace moequant::dist {

// Sentinel of a quantizer that observed nothing (an expert that got no tokens).
constexpr float kUncalibratedAmax = -1.0f;

// The groups reduced, in this order on every rank.
constexpr std::array<Group, 5> kAmaxSyncOrder = {Group::kTP, Group::kETP, Group::kEP, Group::kDP,
                                                 Group::kEDP};

struct AmaxEntry {
  std::string name;             // unique per rank; the same on every rank holding the quantizer
  std::vector<float>* values;   // per-tensor: 1 value; per-channel: one per row. Each value is
                                // >= 0 (finite) or kUncalibratedAmax.
  uint32_t reduce_over;         // group_bit() of TP, ETP, EP, DP, EDP (others are an error)
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
  uint64_t total_collectives() const;
  size_t total_values() const;
};

// Collective over every communicator of `groups`: all ranks call it, each with its own entries.
// Updates *values in place (all or nothing); throws moequant::Error on every rank alike when the
// lists disagree or some rank's input is invalid ("rank R: <problem>").
AmaxSyncReport sync_amax(const std::vector<AmaxEntry>& entries, const ProcessGroups& groups);

}  // namespace moequant::dist
