// Small text helpers that every layer uses: joined lists, bracketed shapes and rank lists, lines,
// prefixes and suffixes, and the integer ceiling of tile and group counts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moequant {

// The items separated by `sep` ("a, b, c").
std::string join(const std::vector<std::string>& items, const std::string& sep = ", ");

// "[3, 4]" ("[]" for a scalar): how messages print shapes, and lists of ranks.
std::string shape_string(const std::vector<int64_t>& shape);
std::string shape_string(const std::vector<int>& values);

// The lines of `text` (no trailing empty line for a final '\n').
std::vector<std::string> split_lines(const std::string& text);

// Whether `s` begins / ends with `affix` (a string is both of itself).
bool starts_with(const std::string& s, const std::string& affix);
bool ends_with(const std::string& s, const std::string& affix);

// ceil(a / b) for a >= 0, b > 0: tiles and groups covering a dimension.
constexpr int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

}  // namespace moequant
