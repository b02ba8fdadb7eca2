// read_text_samples: calibration text from .jsonl or .txt files.
#include "moequant/tokenizer/text_corpus.h"

#include <string_view>

#include <nlohmann/json.hpp>

#include "json_fields.h"
#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/common/limited_json.h"
#include "moequant/common/regular_file.h"
#include "utf8.h"

namespace moequant::tokenizer {

namespace {


// The lines of `text` with their 1-based numbers; a final line without '\n' counts, a trailing
// '\n' does not start another.
template <typename OnLine>
void for_each_line(std::string_view text, const OnLine& on_line) {
  size_t start = 0, number = 1;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    on_line(text.substr(start, end - start), number++);
    start = end + 1;
  }
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

std::vector<std::string> read_jsonl(std::string_view text, const std::string& path) {
  std::vector<std::string> samples;
  for_each_line(text, [&](std::string_view line, size_t number) {
    if (is_blank(line)) return;
    const std::string where = path + ":" + std::to_string(number);
    const json object = parse_limited_json(line, where);
    MQ_CHECK(object.is_object(), where, ": expected a JSON object (got ", json_type_name(object),
             ")");
    const auto it = object.find("text");
    MQ_CHECK(it != object.end(), where, ": missing field \"text\"");
    MQ_CHECK(it->is_string(), where, ": field \"text\" is not a string (got ", json_type_name(*it),
             ")");
    samples.push_back(it->get<std::string>());
  });
  return samples;
}

std::vector<std::string> read_txt(std::string_view text) {
  std::vector<std::string> samples;
  std::string current;
  bool open = false;
  for_each_line(text, [&](std::string_view line, size_t) {
    if (is_blank(line)) {
      if (open) samples.push_back(std::move(current));
      current.clear();
      open = false;
      return;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (open) current += '\n';
    current.append(line.data(), line.size());
    open = true;
  });
  if (open) samples.push_back(std::move(current));
  return samples;
}

}  // namespace

std::vector<std::string> read_text_samples(const std::string& path) {
  MQ_CHECK(ends_with(path, ".jsonl") || ends_with(path, ".txt"), path,
           ": unsupported calibration text file (expected a .jsonl or .txt file)");
  return text_samples_from(read_regular_file(path, kMaxCalibrationFileBytes), path);
}

std::vector<std::string> text_samples_from(const std::string& content, const std::string& path) {
  const bool jsonl = ends_with(path, ".jsonl");
  MQ_CHECK(jsonl || ends_with(path, ".txt"), path,
           ": unsupported calibration text file (expected a .jsonl or .txt file)");
  std::string_view text = content;
  size_t skipped = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) {
    text.remove_prefix(3);  // a byte order mark
    skipped = 3;
  }
  if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos) {
    size_t line = 1;
    for (size_t i = 0; i < bad; ++i) line += text[i] == '\n';
    check_utf8(text, path + ":" + std::to_string(line), skipped);
  }
  std::vector<std::string> samples = jsonl ? read_jsonl(text, path) : read_txt(text);
  MQ_CHECK(!samples.empty(), path, ": no text samples (the calibration corpus is empty)");
  return samples;
}

}  // namespace moequant::tokenizer
