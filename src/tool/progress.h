// A progress indicator for long work: a redrawn bar when stderr is a terminal, a plain line
// every 10% otherwise (logs stay readable), nothing when quiet. Only rank 0 makes one.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace moequant {

class Progress {
 public:
  Progress(std::string label, bool enabled);
  void update(size_t done, size_t total);
  void finish();

 private:
  std::string label_;
  bool enabled_;
  bool tty_;
  int last_percent_ = -1;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace moequant
