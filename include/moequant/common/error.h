// One error type and one check-macro family for the whole library.
//
// User-reachable conditions (bad files, bad shapes, NaN weights, peer failures) throw
// moequant::Error with a message that names the thing at fault; never a bare assert.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

#include "moequant/common/interrupt_cleanup.h"

namespace moequant {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// An error every rank of a group knows about, because the ranks agreed on it
// (parallel::agree_on_error): a program may report it once and exit normally, instead of ending the
// whole job as it must for an error its peers may not know about.
class AgreedError : public Error {
 public:
  // The run's outcome is decided: a launcher's SIGTERM to this rank, once another rank has
  // exited with the error, must not be reported as an interruption (interrupt_cleanup.h).
  explicit AgreedError(const std::string& what) : Error(what) { end_quietly_on_interrupt(1); }
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

// Concatenates its arguments with operator<< into one string.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

}  // namespace moequant

// MQ_CHECK(cond, parts...): throws moequant::Error(parts...) when cond is false.
#define MQ_CHECK(cond, ...)                                                 \
  do {                                                                      \
    if (!(cond)) throw ::moequant::Error(::moequant::str_cat(__VA_ARGS__)); \
  } while (0)

// MQ_THROW(parts...): throws unconditionally.
#define MQ_THROW(...) throw ::moequant::Error(::moequant::str_cat(__VA_ARGS__))
