// The one way the library parses JSON it reads from disk (config.json, tokenizer.json, the shard
// index, hf_quant_config.json, calibration lines): with a nesting limit checked before a tree is
// built. An unknown field nested 10^5 deep is legal JSON, but printing it back (config.json is
// copied into every export) costs gigabytes, and deeper ones overflow the stack.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace moequant {

// Far deeper than any real config or tokenizer (they nest fewer than 10 levels).
constexpr int kMaxJsonDepth = 64;

struct JsonLimits {
  int max_depth = kMaxJsonDepth;
  bool unique_keys = false;  // refuse an object that names a key twice (nlohmann keeps the last)
};

// Parses `text`; every error names `source` (a file, or "file:line"): "<source>: not valid JSON:
// ...", "<source>: JSON nested deeper than 64 levels (at byte N)", "<source>: key 'k' appears
// twice".
nlohmann::json parse_limited_json(std::string_view text, const std::string& source,
                                  const JsonLimits& limits = {});

// read_regular_file(path, max_bytes) then parse_limited_json.
nlohmann::json read_json_file(const std::string& path, uint64_t max_bytes,
                              const JsonLimits& limits = {});

}  // namespace moequant
