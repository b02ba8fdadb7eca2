// Wall-clock timing of stages, for reports: seconds since a steady-clock time point.
#pragma once

#include <chrono>

namespace moequant {

using SteadyClock = std::chrono::steady_clock;

inline double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace moequant
