#include "normalizers.h"

#include <cstdlib>
#include <vector>

#include <utf8proc.h>

#include "moequant/common/error.h"
#include "pattern.h"

namespace moequant::tokenizer {

namespace {

bool is_ascii(const std::string& text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

// NFC, NFD, NFKC, NFKD by utf8proc.
class UnicodeNormalizer : public Normalizer {
 public:
  UnicodeNormalizer(utf8proc_option_t options, std::string where)
      : options_(options), where_(std::move(where)) {}

  std::string normalize(std::string text) const override {
    if (is_ascii(text)) return text;  // every normal form of ASCII is itself
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                     static_cast<utf8proc_ssize_t>(text.size()), &mapped, options_);
    MQ_CHECK(n >= 0, where_, ": Unicode normalization failed (", utf8proc_errmsg(n), ")");
    std::string out(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
    std::free(mapped);
    return out;
  }

 private:
  utf8proc_option_t options_;
  std::string where_;
};

// Prepends a string to non-empty text.
class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string text) const override {
    return text.empty() ? text : prefix_ + text;
  }

 private:
  std::string prefix_;
};

// Replaces every match of a literal string or a regex with `content`.
class Replace : public Normalizer {
 public:
  Replace(const JsonAt& pattern, std::string content)
      : pattern_(pattern), content_(std::move(content)) {}

  std::string normalize(std::string text) const override {
    const std::vector<Range> matches = pattern_.find_all(text);
    if (matches.empty()) return text;
    std::string out;
    out.reserve(text.size());
    size_t prev = 0;
    for (const Range& m : matches) {
      out.append(text, prev, m.first - prev);
      out += content_;
      prev = m.second;
    }
    out.append(text, prev, std::string::npos);
    return out;
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  std::string normalize(std::string text) const override {
    for (const auto& step : steps_) text = step->normalize(std::move(text));
    return text;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const JsonAt& config) {
  const std::string& type = config.at("type").string();
  const auto unicode = [&](utf8proc_option_t form) -> std::unique_ptr<Normalizer> {
    config.expect_only({"type"});
    return std::make_unique<UnicodeNormalizer>(
        static_cast<utf8proc_option_t>(UTF8PROC_STABLE | form), config.where());
  };
  if (type == "NFC") return unicode(UTF8PROC_COMPOSE);
  if (type == "NFD") return unicode(UTF8PROC_DECOMPOSE);
  if (type == "NFKC")
    return unicode(static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (type == "NFKD") {
    return unicode(static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  }
  if (type == "Prepend") {
    config.expect_only({"type", "prepend"});
    return std::make_unique<Prepend>(config.at("prepend").string());
  }
  if (type == "Replace") {
    config.expect_only({"type", "pattern", "content"});
    return std::make_unique<Replace>(config.at("pattern"), config.at("content").string());
  }
  if (type == "Sequence") {
    config.expect_only({"type", "normalizers"});
    const JsonAt list = config.at("normalizers");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.array_size(); ++i) steps.push_back(make_normalizer(list.at(i)));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  MQ_THROW(config.where(), ": unsupported normalizer type '", type,
           "' (supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, Sequence)");
}

}  // namespace moequant::tokenizer
