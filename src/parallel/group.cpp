#include "moequant/parallel/group.h"

namespace moequant::parallel {

const char* group_name(Group g) {
  switch (g) {
    case Group::kWorld:
      return "WORLD";
    case Group::kTP:
      return "TP";
    case Group::kDP:
      return "DP";
    case Group::kETP:
      return "ETP";
    case Group::kEP:
      return "EP";
    case Group::kEDP:
      return "EDP";
    case Group::kPP:
      return "PP";
  }
  return "?";
}

std::string mask_name(uint32_t mask) {
  std::string out;
  for (int i = 0; i < kNumGroups; ++i) {
    const auto g = static_cast<Group>(i);
    if (!(mask & group_bit(g))) continue;
    if (!out.empty()) out += '|';
    out += group_name(g);
  }
  const uint32_t unknown = mask & ~((1u << kNumGroups) - 1);
  if (unknown) out += (out.empty() ? "" : "|") + std::string("unknown bits");
  return out.empty() ? "none" : out;
}

}  // namespace moequant::parallel
