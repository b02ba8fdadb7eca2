// Reading values from a config.json: 64-bit integers checked against the range the tool can hold
// (a count beyond it is a named error, not a truncation or a huge allocation), numbers, flags,
// and the first present of several spellings of a key. Errors name the file and the key.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace moequant {

// The first of `keys` present and not null: an integer in [lo, hi], or an error naming `file`
// and the key ("'num_experts' is 4294967304, expected an integer in 1 .. 65536").
int64_t config_int(const nlohmann::json& c, const std::vector<const char*>& keys,
                   const std::string& file, int64_t lo = 1, int64_t hi = int64_t{1} << 40);
// The same, `fallback` when no key is present.
int64_t config_int_or(const nlohmann::json& c, const std::vector<const char*>& keys,
                      const std::string& file, int64_t fallback, int64_t lo = 1,
                      int64_t hi = int64_t{1} << 40);
// A number (integer or not), `fallback` when absent or null; an error when it is not a finite
// number.
double config_number(const nlohmann::json& c, const char* key, const std::string& file,
                     double fallback);
// A boolean, `fallback` when absent or null; an error when it is something else.
bool config_bool(const nlohmann::json& c, const char* key, const std::string& file, bool fallback);
// True when the key is present and not null.
bool config_has(const nlohmann::json& c, const char* key);

// Limits of the counts a config.json gives (large enough for any released MoE model).
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxExperts = 65536;
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxWidth = int64_t{1} << 24;  // hidden, intermediate, head and rank sizes
constexpr int64_t kMaxVocab = int64_t{1} << 26;

}  // namespace moequant
