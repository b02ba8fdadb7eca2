#include "tokenizer_json.h"

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "moequant/common/error.h"
#include "moequant/common/limited_json.h"

namespace moequant::tokenizer {

namespace {

int32_t read_id(const JsonAt& value) {
  const int64_t id = value.integer();
  MQ_CHECK(id >= 0 && id <= INT32_MAX, value.where(), ": id ", id, " is out of range");
  return static_cast<int32_t>(id);
}

// "merges": ["a b", ...] (before tokenizers 0.20) or [["a", "b"], ...]; not a mix.
std::vector<BpeMerge> read_merges(const JsonAt& list) {
  const size_t n = list.array_size();
  std::vector<BpeMerge> merges;
  merges.reserve(n);
  const bool as_pairs = n > 0 && list.value()[0].is_array();
  for (size_t i = 0; i < n; ++i) {
    const JsonAt entry = list.at(i);
    if (as_pairs) {
      MQ_CHECK(entry.value().is_array() && entry.value().size() == 2 &&
                   entry.value()[0].is_string() && entry.value()[1].is_string(),
               entry.where(), ": expected a pair of strings like the first merge (got ",
               entry.value().dump().substr(0, 80), ")");
      merges.push_back(
          {entry.value()[0].get<std::string>(), entry.value()[1].get<std::string>(), i});
      continue;
    }
    MQ_CHECK(entry.value().is_string(), entry.where(),
             ": expected a string \"a b\" like the first merge (got ",
             entry.value().dump().substr(0, 80), ")");
    const std::string& line = entry.string();
    if (line.rfind("#version", 0) == 0)
      continue;  // a merges.txt header, skipped as tokenizers does
    const size_t space = line.find(' ');
    MQ_CHECK(space != std::string::npos && line.find(' ', space + 1) == std::string::npos,
             entry.where(), ": expected two tokens separated by one space (got \"", line, "\")");
    merges.push_back({line.substr(0, space), line.substr(space + 1), i});
  }
  return merges;
}

// A string field that tokenizers accepts but we implement only when empty or null.
void expect_empty_string(const JsonAt& model, const char* key) {
  if (const auto v = model.find(key)) {
    MQ_CHECK(v->string().empty(), v->where(), ": unsupported value '", v->string(),
             "' (only null or \"\" is implemented)");
  }
}

std::unique_ptr<BpeModel> read_model(const JsonAt& model) {
  const std::string& type = model.at("type").string();
  MQ_CHECK(type == "BPE", model.where(), ": unsupported model type '", type, "' (supported: BPE)");
  model.expect_only({"type", "dropout", "unk_token", "continuing_subword_prefix",
                     "end_of_word_suffix", "fuse_unk", "byte_fallback", "ignore_merges", "vocab",
                     "merges"});
  if (const auto dropout = model.find("dropout")) {
    MQ_CHECK(dropout->value().is_number() && dropout->value().get<double>() == 0.0,
             dropout->where(), ": unsupported value ", dropout->value().dump(),
             " (BPE dropout makes the ids random; only null or 0 is implemented)");
  }
  expect_empty_string(model, "continuing_subword_prefix");
  expect_empty_string(model, "end_of_word_suffix");
  BpeOptions options;
  if (const auto unk = model.find("unk_token")) options.unk_token = unk->string();
  options.fuse_unk = model.boolean_or("fuse_unk", false);
  options.byte_fallback = model.boolean_or("byte_fallback", false);
  options.ignore_merges = model.boolean_or("ignore_merges", false);

  const JsonAt vocab_json = model.at("vocab");
  vocab_json.expect_object();
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(vocab_json.value().size());
  for (const auto& item : vocab_json.value().items()) {
    const JsonAt id(item.value(), model.file(), vocab_json.path() + "[\"" + item.key() + "\"]");
    vocab[item.key()] = read_id(id);
  }
  return std::make_unique<BpeModel>(std::move(vocab), read_merges(model.at("merges")),
                                    std::move(options), model.where());
}

std::vector<AddedToken> read_added_tokens(const JsonAt& list) {
  std::vector<AddedToken> tokens;
  for (size_t i = 0; i < list.array_size(); ++i) {
    const JsonAt entry = list.at(i);
    entry.expect_only(
        {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
    read_id(entry.at("id"));  // checked; the id used is assigned as tokenizers assigns it
    AddedToken t;
    t.content = entry.at("content").string();
    t.single_word = entry.boolean_or("single_word", false);
    t.lstrip = entry.boolean_or("lstrip", false);
    t.rstrip = entry.boolean_or("rstrip", false);
    t.normalized = entry.boolean_or("normalized", true);
    t.special = entry.boolean_or("special", false);
    tokens.push_back(std::move(t));
  }
  return tokens;
}

}  // namespace

TokenizerParts load_tokenizer_json(std::string_view text, const std::string& source) {
  const json doc = parse_limited_json(text, source);
  const JsonAt root(doc, source, "");
  root.expect_only({"version", "truncation", "padding", "added_tokens", "normalizer",
                    "pre_tokenizer", "post_processor", "decoder", "model"});
  if (const auto version = root.find("version")) {
    MQ_CHECK(version->string() == "1.0", version->where(), ": unsupported version '",
             version->string(), "' (expected 1.0)");
  }
  // Both change the ids of encode(); calibration text is cut into samples by the caller instead.
  for (const char* key : {"truncation", "padding"}) {
    const auto v = root.find(key);
    MQ_CHECK(!v, source, ": ", key, ": only null is implemented (got ",
             v ? v->value().dump().substr(0, 80) : "", ")");
  }
  TokenizerParts parts;
  if (const auto n = root.find("normalizer")) parts.normalizer = make_normalizer(*n);
  if (const auto p = root.find("pre_tokenizer")) parts.pre_tokenizer = make_pre_tokenizer(*p);
  if (const auto p = root.find("post_processor")) parts.post_processor = make_post_processor(*p);
  parts.model = read_model(root.at("model"));
  std::vector<AddedToken> added;
  if (const auto list = root.find("added_tokens")) added = read_added_tokens(*list);
  parts.added = std::make_unique<AddedVocabulary>(added, *parts.model, parts.normalizer.get(),
                                                  source + ": added_tokens");
  return parts;
}

}  // namespace moequant::tokenizer
