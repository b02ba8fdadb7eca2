// The "pattern" of Split and Replace in tokenizer.json: {"String": "..."} (a literal) or
// {"Regex": "..."} (Oniguruma syntax).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "json_fields.h"
#include "onig_regex.h"
#include "splitting.h"

namespace moequant::tokenizer {

class Pattern {
 public:
  // Reads {"String": s} or {"Regex": r}; throws naming the entry for anything else, and for an
  // empty literal (which `tokenizers` would match between every two characters).
  explicit Pattern(const JsonAt& config);

  // The non-overlapping matches in `text`, left to right.
  std::vector<Range> find_all(std::string_view text) const {
    return regex_ ? regex_->find_all(text) : find_literal(text, literal_);
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
};

}  // namespace moequant::tokenizer
