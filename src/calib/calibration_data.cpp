#include "moequant/calib/calibration_data.h"

#include <nlohmann/json.hpp>

#include <random>
#include <string_view>

#include "moequant/common/error.h"
#include "moequant/common/limited_json.h"
#include "moequant/common/regular_file.h"
#include "moequant/common/strings.h"
#include "moequant/tokenizer/text_corpus.h"
#include "moequant/tokenizer/tokenizer.h"

namespace moequant {

namespace {

// Calls on_line(line, number) for each line of `text` (1-based; a final line without '\n'
// counts) until it returns false.
template <typename OnLine>
void for_each_line(const std::string& text, const OnLine& on_line) {
  size_t start = 0, number = 1;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (!on_line(std::string_view(text).substr(start, end - start), number++)) return;
    start = end + 1;
  }
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// The calibration file, read once: a FIFO or device is refused by name, never opened again.
std::string read_calibration_file(const std::string& path) {
  MQ_CHECK(path_exists(path), "cannot read calibration data '", path, "': it does not exist");
  return read_regular_file(path, kMaxCalibrationFileBytes);
}

CalibrationData token_ids_from(const std::string& content, const std::string& path, int64_t samples,
                               int64_t seq_len, int64_t vocab) {
  MQ_CHECK(seq_len > 0, "--calib-seq-len must be positive");
  CalibrationData data;
  data.seq_len = seq_len;
  data.source = path;
  for_each_line(content, [&](std::string_view line, size_t line_no) {
    if (samples > 0 && static_cast<int64_t>(data.samples.size()) >= samples) return false;
    if (is_blank(line)) return true;
    const nlohmann::json j = parse_limited_json(line, str_cat(path, ":", line_no));
    MQ_CHECK(j.is_object() && j.contains("input_ids") && j["input_ids"].is_array(), path, ":",
             line_no,
             ": expected {\"input_ids\": [...]} (text corpora need the model's "
             "tokenizer.json)");
    const nlohmann::json& ids = j["input_ids"];
    MQ_CHECK(static_cast<int64_t>(ids.size()) >= seq_len, path, ":", line_no, ": ", ids.size(),
             " token ids, fewer than --calib-seq-len ", seq_len);
    std::vector<int64_t> sample(static_cast<size_t>(seq_len));
    for (int64_t i = 0; i < seq_len; ++i) {
      const nlohmann::json& v = ids[static_cast<size_t>(i)];
      MQ_CHECK(v.is_number_integer(), path, ":", line_no, ": input_ids[", i, "] is not an integer");
      const int64_t id = v.get<int64_t>();
      MQ_CHECK(id >= 0 && id < vocab, path, ":", line_no, ": token id ", id,
               " is outside the model's vocabulary of ", vocab);
      sample[static_cast<size_t>(i)] = id;
    }
    data.samples.push_back(std::move(sample));
    return true;
  });
  MQ_CHECK(!data.samples.empty(), path, ": no calibration samples (the file is empty)");
  MQ_CHECK(samples == 0 || static_cast<int64_t>(data.samples.size()) == samples, path, ": holds ",
           data.samples.size(), " samples, fewer than --calib-samples ", samples);
  return data;
}

CalibrationData tokenized_text_from(const std::string& content, const std::string& path,
                                    const std::string& tokenizer_json, int64_t samples,
                                    int64_t seq_len, int64_t vocab) {
  MQ_CHECK(seq_len > 0, "--calib-seq-len must be positive");
  const std::vector<std::string> texts =
      tokenizer::text_samples_from(content, path);  // file:line errors
  MQ_CHECK(path_exists(tokenizer_json), "calibration text '", path,
           "' needs the model's tokenizer, but '", tokenizer_json,
           "' does not exist (give token ids as {\"input_ids\": [...]} lines)");
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_file(tokenizer_json);
  // Samples packed end to end, as calibration corpora usually are: no padding, no mask.
  std::vector<int64_t> stream;
  const int64_t want = samples > 0 ? samples * seq_len : 0;
  for (size_t i = 0; i < texts.size() && (want == 0 || static_cast<int64_t>(stream.size()) < want);
       ++i) {
    for (const int32_t id : tok.encode(texts[i], true, path + " sample " + std::to_string(i + 1))) {
      MQ_CHECK(id >= 0 && id < vocab, path, ": sample ", i + 1, " gives token id ", id,
               ", outside the model's vocabulary of ", vocab, " (does ", tokenizer_json,
               " belong to this model?)");
      stream.push_back(id);
    }
  }
  const int64_t full = static_cast<int64_t>(stream.size()) / seq_len;
  MQ_CHECK(full > 0 && (samples == 0 || full >= samples), path, ": the text gives ", stream.size(),
           " tokens, fewer than ", samples > 0 ? samples : 1, " sequence(s) of ", seq_len);
  CalibrationData data;
  data.seq_len = seq_len;
  data.source = path + " (tokenized with " + tokenizer_json + ")";
  const int64_t n = samples > 0 ? samples : full;
  for (int64_t s = 0; s < n; ++s)
    data.samples.emplace_back(stream.begin() + s * seq_len, stream.begin() + (s + 1) * seq_len);
  return data;
}

// True when the first non-blank line of a .jsonl holds "input_ids" (token ids, not text).
bool holds_token_ids(const std::string& content, const std::string& path) {
  bool ids = true;  // empty or malformed: token_ids_from names the problem
  for_each_line(content, [&](std::string_view line, size_t line_no) {
    if (is_blank(line)) return true;
    try {
      const nlohmann::json j = parse_limited_json(line, str_cat(path, ":", line_no));
      ids = j.is_object() && j.contains("input_ids");
    } catch (const Error&) {
    }
    return false;
  });
  return ids;
}

}  // namespace

CalibrationData read_token_ids(const std::string& path, int64_t samples, int64_t seq_len,
                               int64_t vocab) {
  return token_ids_from(read_calibration_file(path), path, samples, seq_len, vocab);
}

CalibrationData random_token_ids(int64_t samples, int64_t seq_len, int64_t vocab, uint64_t seed) {
  MQ_CHECK(samples > 0 && seq_len > 0 && vocab > 0, "random calibration data needs positive sizes");
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> id(0, vocab - 1);
  CalibrationData data;
  data.seq_len = seq_len;
  data.source = "random tokens (seed " + std::to_string(seed) + ")";
  data.samples.assign(static_cast<size_t>(samples), std::vector<int64_t>(seq_len));
  for (auto& s : data.samples)
    for (auto& v : s) v = id(rng);
  return data;
}

CalibrationData tokenize_text(const std::string& path, const std::string& tokenizer_json,
                              int64_t samples, int64_t seq_len, int64_t vocab) {
  return tokenized_text_from(read_calibration_file(path), path, tokenizer_json, samples, seq_len,
                             vocab);
}

CalibrationData load_calibration_data(const std::string& spec, const std::string& model_dir,
                                      int64_t samples, int64_t seq_len, int64_t vocab,
                                      uint64_t seed) {
  if (spec == "random") return random_token_ids(samples > 0 ? samples : 16, seq_len, vocab, seed);
  const std::string content = read_calibration_file(spec);
  const bool text =
      ends_with(spec, ".txt") || (ends_with(spec, ".jsonl") && !holds_token_ids(content, spec));
  if (!text) return token_ids_from(content, spec, samples, seq_len, vocab);
  return tokenized_text_from(content, spec, model_dir + "/tokenizer.json", samples, seq_len, vocab);
}

}  // namespace moequant
