#include "pre_tokenizers.h"

#include "byte_level.h"
#include "moequant/common/error.h"
#include "onig_regex.h"
#include "pattern.h"
#include "splitting.h"
#include "utf8.h"

namespace moequant::tokenizer {

namespace {

// Replaces each piece by the pieces of it at `ranges_of(piece)`; the first keeps at_origin.
template <typename RangesOf>
void split_each(std::vector<Piece>& pieces, const RangesOf& ranges_of) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (Piece& piece : pieces) {
    for (const Range& r : ranges_of(piece.text)) {
      out.push_back(
          {piece.text.substr(r.first, r.second - r.first), piece.at_origin && r.first == 0});
    }
  }
  pieces = std::move(out);
}

// Split: a literal or a regex, one of the five behaviors, optionally inverted.
class Split : public PreTokenizer {
 public:
  Split(const JsonAt& pattern, SplitBehavior behavior, bool invert)
      : pattern_(pattern), behavior_(behavior), invert_(invert) {}

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_each(pieces, [&](const std::string& text) {
      return split_ranges(text.size(), pattern_.find_all(text), behavior_, invert_);
    });
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// The regex GPT-2 splits words with (ByteLevel's use_regex).
constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// ByteLevel: optionally a prefix space and the GPT-2 split, then every byte to its character.
class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex, const std::string& where)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex ? std::make_unique<Regex>(kGpt2Pattern, where + " (GPT-2 regex)")
                         : nullptr) {}

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_) {
      for (Piece& p : pieces)
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, 1, ' ');
    }
    if (regex_) {
      split_each(pieces, [&](const std::string& text) {
        return split_ranges(text.size(), regex_->find_all(text), SplitBehavior::kIsolated);
      });
    }
    for (Piece& p : pieces) p.text = byte_level_encode(p.text);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

// Metaspace: spaces become the replacement character, which is prepended per the scheme; then
// optionally a split before every replacement character.
class Metaspace : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (Piece& p : pieces) {
      std::string replaced;
      replaced.reserve(p.text.size());
      for (char c : p.text) {
        if (c == ' ') {
          replaced += replacement_;
        } else {
          replaced += c;
        }
      }
      const bool starts_with_replacement =
          replaced.compare(0, replacement_.size(), replacement_) == 0;
      const bool prepend =
          !starts_with_replacement &&
          (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && p.at_origin));
      p.text = prepend ? replacement_ + replaced : std::move(replaced);
    }
    if (split_) {
      split_each(pieces, [&](const std::string& text) {
        return split_ranges(text.size(), find_literal(text, replacement_),
                            SplitBehavior::kMergedWithNext);
      });
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

std::unique_ptr<PreTokenizer> make_split(const JsonAt& config) {
  config.expect_only({"type", "pattern", "behavior", "invert"});
  const JsonAt behavior = config.at("behavior");
  return std::make_unique<Split>(config.at("pattern"),
                                 split_behavior_from_name(behavior.string(), behavior.where()),
                                 config.at("invert").boolean());
}

std::unique_ptr<PreTokenizer> make_metaspace(const JsonAt& config) {
  config.expect_only(
      {"type", "replacement", "add_prefix_space", "prepend_scheme", "split", "str_rep"});
  const JsonAt replacement = config.at("replacement");
  const std::string& r = replacement.string();
  MQ_CHECK(!r.empty() && utf8_length(static_cast<unsigned char>(r[0])) == r.size(),
           replacement.where(), ": expected one character (got '", r, "')");
  PrependScheme scheme = PrependScheme::kAlways;
  if (const auto s = config.find("prepend_scheme")) {
    const std::string& name = s->string();
    if (name == "always") {
      scheme = PrependScheme::kAlways;
    } else if (name == "first") {
      scheme = PrependScheme::kFirst;
    } else if (name == "never") {
      scheme = PrependScheme::kNever;
    } else {
      MQ_THROW(s->where(), ": unsupported prepend_scheme '", name,
               "' (expected always, first or never)");
    }
  }
  // As tokenizers reads it: add_prefix_space false means "never" and must not contradict it.
  if (const auto add = config.find("add_prefix_space"); add && !add->boolean()) {
    MQ_CHECK(!config.find("prepend_scheme") || scheme == PrependScheme::kNever, config.where(),
             ": add_prefix_space false does not match the declared prepend_scheme");
    scheme = PrependScheme::kNever;
  }
  return std::make_unique<Metaspace>(r, scheme, config.boolean_or("split", true));
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonAt& config) {
  const std::string& type = config.at("type").string();
  if (type == "Split") return make_split(config);
  if (type == "ByteLevel") {
    config.expect_only({"type", "add_prefix_space", "trim_offsets", "use_regex"});
    config.at("trim_offsets").boolean();  // offsets only; required as tokenizers requires it
    return std::make_unique<ByteLevel>(config.at("add_prefix_space").boolean(),
                                       config.boolean_or("use_regex", true), config.where());
  }
  if (type == "Metaspace") return make_metaspace(config);
  if (type == "Sequence") {
    config.expect_only({"type", "pretokenizers"});
    const JsonAt list = config.at("pretokenizers");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.array_size(); ++i) steps.push_back(make_pre_tokenizer(list.at(i)));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  MQ_THROW(config.where(), ": unsupported pre-tokenizer type '", type,
           "' (supported: Split, ByteLevel, Metaspace, Sequence)");
}

}  // namespace moequant::tokenizer
