// The parallel layouts the multi-rank tests run, by world size.
#pragma once

#include <string>
#include <vector>

#include "moequant/parallel/parallel_state.h"

namespace moequant::parallel::testing {

struct Layout {
  std::string name;
  int world;
  ParallelSizes sizes;
};

// 2 ranks: TP2, EP2, ETP2, PP2; 4 ranks: EP4, TP2xEP2, ETP2xEP2, EP2xPP2;
// 8 ranks: TP2xEP2xPP2, EP8, ETP2xEP4. Only those of `world` ranks are returned.
inline std::vector<Layout> layouts_for(int world) {
  auto sizes = [](int tp, int ep, int etp, int pp) {
    ParallelSizes s;
    s.tp = tp;
    s.ep = ep;
    s.etp = etp;
    s.pp = pp;
    return s;
  };
  const std::vector<Layout> all = {
      {"TP2", 2, sizes(2, 1, 1, 1)},         {"EP2", 2, sizes(1, 2, 1, 1)},
      {"ETP2", 2, sizes(1, 1, 2, 1)},        {"PP2", 2, sizes(1, 1, 1, 2)},
      {"EP4", 4, sizes(1, 4, 1, 1)},         {"TP2xEP2", 4, sizes(2, 2, 1, 1)},
      {"ETP2xEP2", 4, sizes(1, 2, 2, 1)},    {"EP2xPP2", 4, sizes(1, 2, 1, 2)},
      {"TP2xEP2xPP2", 8, sizes(2, 2, 1, 2)}, {"EP8", 8, sizes(1, 8, 1, 1)},
      {"ETP2xEP4", 8, sizes(1, 4, 2, 1)},
  };
  std::vector<Layout> out;
  for (const auto& l : all)
    if (l.world == world) out.push_back(l);
  return out;
}

// The layout with EP spanning the whole world (EP2, EP4, EP8), used by the mismatch tests.
inline Layout ep_world_layout(int world) {
  ParallelSizes s;
  s.ep = world;
  return {"EP" + std::to_string(world), world, s};
}

}  // namespace moequant::parallel::testing
