#include "moequant/common/limited_json.h"

#include <set>
#include <vector>

#include "moequant/common/error.h"
#include "moequant/common/regular_file.h"

namespace moequant {

namespace {

// Checks the nesting depth in one pass over the text, before nlohmann builds anything; brackets
// inside strings do not count. Malformed text is left to the parser to name.
void check_depth(std::string_view text, const std::string& source, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      MQ_CHECK(++depth <= max_depth, source, ": JSON nested deeper than ", max_depth,
               " levels (at byte ", i, ")");
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

}  // namespace

nlohmann::json parse_limited_json(std::string_view text, const std::string& source,
                                  const JsonLimits& limits) {
  using json = nlohmann::json;
  check_depth(text, source, limits.max_depth);
  try {
    if (!limits.unique_keys) return json::parse(text.begin(), text.end());
    std::vector<std::set<std::string>> open_objects;
    const json::parser_callback_t on_event = [&](int, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::object_start) {
        open_objects.emplace_back();
      } else if (event == json::parse_event_t::object_end) {
        open_objects.pop_back();
      } else if (event == json::parse_event_t::key) {
        const auto& k = parsed.get_ref<const std::string&>();
        MQ_CHECK(open_objects.back().insert(k).second, source, ": key '", k, "' appears twice");
      }
      return true;
    };
    return json::parse(text.begin(), text.end(), on_event);
  } catch (const json::parse_error& e) {
    MQ_THROW(source, ": not valid JSON: ", e.what());
  }
}

nlohmann::json read_json_file(const std::string& path, uint64_t max_bytes,
                              const JsonLimits& limits) {
  return parse_limited_json(read_regular_file(path, max_bytes), path, limits);
}

}  // namespace moequant
