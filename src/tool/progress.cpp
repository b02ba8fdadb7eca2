#include "progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace moequant {

namespace {

// "3.2 GB": one decimal in the unit of `scale` (the total's), so both numbers share a unit.
const char* size_unit(double scale, double* divisor) {
  static const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  *divisor = 1;
  while (scale >= 1000 && u < 4) scale /= 1000, *divisor *= 1000, ++u;
  return units[u];
}

std::string fixed(double v, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::string duration(double s) {
  if (s < 60) return fixed(std::ceil(s), 0) + " s";
  if (s < 3600) return fixed(std::floor(s / 60), 0) + " min " + fixed(std::fmod(s, 60), 0) + " s";
  return fixed(std::floor(s / 3600), 0) + " h " + fixed(std::fmod(s, 3600) / 60, 0) + " min";
}

}  // namespace

Progress::Progress(std::string label, std::string unit, bool enabled)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) == 1) {}

std::string Progress::line(const std::string& label, const std::string& unit, uint64_t done,
                           uint64_t total, double seconds) {
  const int percent = total ? static_cast<int>(100 * done / total) : 100;
  std::string out = label + ": " + std::to_string(percent) + "% ";
  const bool bytes = unit == "bytes";
  if (bytes) {
    double divisor = 1;
    const char* u = size_unit(static_cast<double>(total), &divisor);
    out += fixed(done / divisor, 1) + "/" + fixed(total / divisor, 1) + " " + u;
  } else {
    out += std::to_string(done) + "/" + std::to_string(total) + " " + unit;
  }
  // A rate and the time left once there is something to measure them on.
  if (seconds >= 0.5 && done > 0 && done < total) {
    const double rate = done / seconds;
    if (bytes) {
      double divisor = 1;
      const char* u = size_unit(rate, &divisor);
      out += ", " + fixed(rate / divisor, 1) + " " + u + "/s";
    }
    out += ", " + duration((total - done) / rate) + " left";
  }
  return out;
}

void Progress::update(uint64_t done, uint64_t total) {
  if (!enabled_ || total == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (!started_) {
    started_ = true;
    start_ = now;
  }
  const int percent = static_cast<int>(100 * done / total);
  const double seconds = std::chrono::duration<double>(now - start_).count();
  if (tty_) {
    if (done != total && now - last_draw_ < std::chrono::milliseconds(200)) return;
    // Back to the line's start, the text, and the rest of an older, longer line cleared.
    std::fprintf(stderr, "\r%s\033[K", line(label_, unit_, done, total, seconds).c_str());
    std::fflush(stderr);
    last_draw_ = now;
  } else if (percent / 10 != last_percent_ / 10 || done == total) {
    std::fprintf(stderr, "%s\n", line(label_, unit_, done, total, seconds).c_str());
  }
  last_percent_ = percent;
}

void Progress::finish() {
  if (enabled_ && tty_ && started_) std::fprintf(stderr, "\n");
  started_ = false;
  last_percent_ = -1;
}

}  // namespace moequant
