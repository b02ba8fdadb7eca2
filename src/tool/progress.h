// Progress of long work in a person's units: "exporting: 40% 3.2/8.1 GB, 2.1 GB/s, 3 s left", or
// "calibrating: 25% 3/12 layers, 9 s left". One line redrawn in place when stderr is a terminal
// (at most 5 times a second), a plain line every 10% otherwise (logs stay readable), nothing
// when quiet. Only rank 0 makes one.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace moequant {

class Progress {
 public:
  // `unit` names what done/total count ("layers", "steps"); "bytes" shows sizes and a rate.
  Progress(std::string label, std::string unit, bool enabled);
  void update(uint64_t done, uint64_t total);
  // Ends the redrawn line (a terminal) once anything was shown.
  void finish();

  // The text of one update, `seconds` after the first one (exposed for tests).
  static std::string line(const std::string& label, const std::string& unit, uint64_t done,
                          uint64_t total, double seconds);

 private:
  std::string label_;
  std::string unit_;
  bool enabled_;
  bool tty_;
  bool started_ = false;
  int last_percent_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace moequant
