#include "progress.h"

#include <unistd.h>

#include <cstdio>

namespace moequant {

Progress::Progress(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled), tty_(::isatty(STDERR_FILENO) == 1) {}

void Progress::update(size_t done, size_t total) {
  if (!enabled_ || total == 0) return;
  const int percent = static_cast<int>(100 * done / total);
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (percent == last_percent_ && now - last_draw_ < std::chrono::milliseconds(200) &&
        done != total)
      return;
    const int width = 30, filled = width * percent / 100;
    std::fprintf(stderr, "\r%s [%s%s] %3d%% (%zu/%zu)", label_.c_str(),
                 std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                 percent, done, total);
    std::fflush(stderr);
    last_draw_ = now;
  } else if (percent / 10 != last_percent_ / 10 || done == total) {
    std::fprintf(stderr, "%s: %d%% (%zu/%zu)\n", label_.c_str(), percent, done, total);
  }
  last_percent_ = percent;
}

void Progress::finish() {
  if (enabled_ && tty_ && last_percent_ >= 0) std::fprintf(stderr, "\n");
  last_percent_ = -1;
}

}  // namespace moequant
