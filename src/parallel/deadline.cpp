#include "moequant/parallel/deadline.h"

#include <sched.h>

#include <cmath>
#include <cstdlib>
#include <thread>

#include "moequant/common/error.h"

namespace moequant::parallel {

std::chrono::milliseconds parse_timeout_seconds(const std::string& text, const std::string& what) {
  char* end = nullptr;
  const double s = std::strtod(text.c_str(), &end);
  const bool parsed = !text.empty() && end && *end == '\0';
  MQ_CHECK(parsed && std::isfinite(s) && s > 0 && s <= kMaxTimeoutSeconds, what, "='", text,
           "' is not a positive number of seconds");
  return timeout_from_seconds(s, what);
}

std::chrono::milliseconds timeout_from_seconds(double seconds, const std::string& what) {
  MQ_CHECK(std::isfinite(seconds) && seconds > 0 && seconds <= kMaxTimeoutSeconds, what, " ",
           seconds, " is out of range: a timeout is a positive number of seconds, at most ",
           kMaxTimeoutSeconds, " (a year)");
  return std::chrono::milliseconds(std::max<int64_t>(1, std::llround(seconds * 1000.0)));
}

std::chrono::milliseconds default_collective_timeout() {
  const char* env = std::getenv(kTimeoutEnvVar);
  if (env == nullptr || *env == '\0') return kDefaultCollectiveTimeout;
  return parse_timeout_seconds(env, kTimeoutEnvVar);
}

std::string format_seconds(std::chrono::milliseconds d) {
  const int64_t ms = d.count();
  if (ms % 1000 == 0) return str_cat(ms / 1000, " s");
  return str_cat(static_cast<double>(ms) / 1000.0, " s");
}

std::string timeout_message(const std::string& group, const std::string& op,
                            std::chrono::milliseconds timeout, int rank) {
  return str_cat(group, " ", op, " timed out after ", format_seconds(timeout), " on rank ", rank,
                 " (a peer died or stalled)");
}

bool poll_until(const Deadline& deadline, const std::function<bool()>& done) {
  using std::chrono::microseconds;
  const auto start = std::chrono::steady_clock::now();
  microseconds nap(20);
  for (int spin = 0;; ++spin) {
    if (done()) return true;
    if (deadline.expired()) return done();  // one last look: the peer may have just arrived
    if (spin < 64) continue;
    if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(2)) {
      sched_yield();
      continue;
    }
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, microseconds(1000));
  }
}

}  // namespace moequant::parallel
