// Checks of numeric flag values whose messages say what was wrong in words: CLI11's
// PositiveNumber prints "Value 0 not in range 0.000000 to 1797693...", and the same for a value
// that is not a number at all. The option parser puts the flag in front ("--layers: ...").
#pragma once

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace moequant::tool {

// The value parsed whole as a finite number, or NaN.
inline double parse_flag_number(const std::string& text) {
  if (text.empty()) return NAN;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (*end != '\0' || errno == ERANGE || !std::isfinite(v)) return NAN;
  return v;
}

inline std::string flag_number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.15g", v);
  return buf;
}

// A number > 0 (an integer flag's conversion then refuses fractions).
inline CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const double v = parse_flag_number(text);
        if (std::isnan(v)) return "'" + text + "' is not a finite number";
        if (v <= 0) return text + " is not positive (must be at least 1)";
        return "";
      },
      "POSITIVE", "positive");
}

// A number in [lo, hi].
inline CLI::Validator number_in(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        const double v = parse_flag_number(text);
        if (std::isnan(v)) return "'" + text + "' is not a finite number";
        if (v < lo || v > hi)
          return text + " is out of range: from " + flag_number_text(lo) + " to " +
                 flag_number_text(hi);
        return "";
      },
      "[" + flag_number_text(lo) + " - " + flag_number_text(hi) + "]", "number_in");
}

}  // namespace moequant::tool
