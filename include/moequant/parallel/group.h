// The process groups of the Megatron-core layout (docs/design.md, "Parallel layout").
#pragma once

#include <cstdint>
#include <string>

namespace moequant::parallel {

// kWorld: every rank. Dense view: kTP, kDP, kPP. Expert view: kETP, kEP, kEDP (and kPP).
enum class Group : uint32_t { kWorld, kTP, kDP, kETP, kEP, kEDP, kPP };

constexpr int kNumGroups = 7;

// Bit of `g` in a reduce_over mask (see amax_sync.h).
constexpr uint32_t group_bit(Group g) {
  return 1u << static_cast<uint32_t>(g);
}

// "WORLD", "TP", "DP", "ETP", "EP", "EDP", "PP": the names used in error messages.
const char* group_name(Group g);

// Names of the groups whose bits are set in `mask`, e.g. "ETP|EP"; "none" for 0.
std::string mask_name(uint32_t mask);

}  // namespace moequant::parallel
