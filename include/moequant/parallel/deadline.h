// Deadlines of collective operations (docs/design.md, "Communication": every collective has a
// deadline).
//
// Every collective, send and recv of every backend waits at most `timeout` for its peers, then
// fails with "<group> <operation> timed out after N s on rank R (a peer died or stalled)".
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace moequant::parallel {

// Default when neither an option nor the environment sets one: 10 minutes.
constexpr std::chrono::milliseconds kDefaultCollectiveTimeout = std::chrono::minutes(10);

// Environment variable overriding the default, in (possibly fractional) seconds.
constexpr const char* kTimeoutEnvVar = "MOEQUANT_COLLECTIVE_TIMEOUT_S";

// The timeout new communicators start with: $MOEQUANT_COLLECTIVE_TIMEOUT_S when set (throws
// moequant::Error when it is not a positive number), else kDefaultCollectiveTimeout.
std::chrono::milliseconds default_collective_timeout();

// Longest timeout accepted: a year. Beyond it a deadline would overflow the clock arithmetic
// (a 1e300 s timeout became negative: every collective "timed out" at once).
constexpr double kMaxTimeoutSeconds = 365.0 * 24 * 3600;

// Parses a positive number of seconds ("3", "0.5"); `what` names the source in errors.
std::chrono::milliseconds parse_timeout_seconds(const std::string& text, const std::string& what);

// `seconds` as a timeout, when in (0, kMaxTimeoutSeconds]; throws naming `what` otherwise.
std::chrono::milliseconds timeout_from_seconds(double seconds, const std::string& what);

// "3 s", "0.5 s", "600 s".
std::string format_seconds(std::chrono::milliseconds d);

// "<group> <op> timed out after N s on rank R (a peer died or stalled)".
std::string timeout_message(const std::string& group, const std::string& op,
                            std::chrono::milliseconds timeout, int rank);

class Deadline {
 public:
  explicit Deadline(std::chrono::milliseconds timeout)
      : start_(std::chrono::steady_clock::now()), timeout_(timeout) {}
  bool expired() const { return std::chrono::steady_clock::now() - start_ >= timeout_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  double elapsed_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
  std::chrono::milliseconds timeout_;
};

// Calls `done()` until it returns true or `deadline` expires (returns false then). Spins
// briefly, then yields, then sleeps in growing steps up to 1 ms: fast for the common short
// wait, and gentle on oversubscribed cores where the peer we wait for needs the CPU.
bool poll_until(const Deadline& deadline, const std::function<bool()>& done);

}  // namespace moequant::parallel
