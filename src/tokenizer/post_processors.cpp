#include "post_processors.h"

#include <cstdint>
#include <map>
#include <string>

#include "moequant/common/error.h"

namespace moequant::tokenizer {

namespace {

class ByteLevelProcessor : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
};

// The single-sequence template: special tokens and the sequence ($A) in order.
class TemplateProcessing : public PostProcessor {
 public:
  struct Item {
    bool is_sequence;
    std::vector<int32_t> ids;  // of a special token
  };
  explicit TemplateProcessing(std::vector<Item> single) : single_(std::move(single)) {}

  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const Item& item : single_) {
      if (item.is_sequence) {
        out.insert(out.end(), ids.begin(), ids.end());
      } else if (add_special_tokens) {
        out.insert(out.end(), item.ids.begin(), item.ids.end());
      }
    }
    ids = std::move(out);
  }

 private:
  std::vector<Item> single_;
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps)
      : steps_(std::move(steps)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    for (const auto& step : steps_) step->process(ids, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

using SpecialTokens = std::map<std::string, std::vector<int32_t>>;

SpecialTokens read_special_tokens(const JsonAt& table) {
  table.expect_object();
  SpecialTokens tokens;
  for (const auto& item : table.value().items()) {
    const JsonAt entry = table.at(item.key().c_str());
    entry.expect_only({"id", "ids", "tokens"});
    const JsonAt ids = entry.at("ids");
    std::vector<int32_t>& out = tokens[item.key()];
    for (size_t i = 0; i < ids.array_size(); ++i) {
      const int64_t id = ids.at(i).integer();
      MQ_CHECK(id >= 0 && id <= INT32_MAX, ids.at(i).where(), ": id ", id, " is out of range");
      out.push_back(static_cast<int32_t>(id));
    }
  }
  return tokens;
}

// One template ("single" or "pair"), checked against the special-token table; `sequences` are
// the sequence ids it may use ("A" for single, "A" and "B" for pair).
std::vector<TemplateProcessing::Item> read_template(const JsonAt& list,
                                                    const SpecialTokens& special,
                                                    const std::vector<std::string>& sequences) {
  std::vector<TemplateProcessing::Item> items;
  for (size_t i = 0; i < list.array_size(); ++i) {
    const JsonAt piece = list.at(i);
    piece.expect_only({"SpecialToken", "Sequence"});
    if (const auto token = piece.find("SpecialToken")) {
      token->expect_only({"id", "type_id"});
      const std::string& name = token->at("id").string();
      const auto it = special.find(name);
      MQ_CHECK(it != special.end(), token->where(), ": special token '", name,
               "' is not in special_tokens");
      items.push_back({false, it->second});
    } else {
      const JsonAt sequence = piece.at("Sequence");
      sequence.expect_only({"id", "type_id"});
      const std::string& id = sequence.at("id").string();
      bool known = false;
      for (const auto& s : sequences) known = known || s == id;
      MQ_CHECK(known, sequence.where(), ": unsupported sequence id '", id, "' here");
      items.push_back({true, {}});
    }
  }
  return items;
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const JsonAt& config) {
  const std::string& type = config.at("type").string();
  if (type == "ByteLevel") {
    config.expect_only({"type", "add_prefix_space", "trim_offsets", "use_regex"});
    return std::make_unique<ByteLevelProcessor>();
  }
  if (type == "TemplateProcessing") {
    config.expect_only({"type", "single", "pair", "special_tokens"});
    const SpecialTokens special = read_special_tokens(config.at("special_tokens"));
    read_template(config.at("pair"), special, {"A", "B"});  // checked as tokenizers checks it
    return std::make_unique<TemplateProcessing>(read_template(config.at("single"), special, {"A"}));
  }
  if (type == "Sequence") {
    config.expect_only({"type", "processors"});
    const JsonAt list = config.at("processors");
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < list.array_size(); ++i) steps.push_back(make_post_processor(list.at(i)));
    return std::make_unique<SequenceProcessor>(std::move(steps));
  }
  MQ_THROW(config.where(), ": unsupported post-processor type '", type,
           "' (supported: ByteLevel, TemplateProcessing, Sequence)");
}

}  // namespace moequant::tokenizer
