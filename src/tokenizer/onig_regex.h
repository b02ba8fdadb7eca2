// Regular expressions as tokenizer.json writes them (the Oniguruma dialect that Hugging Face
// `tokenizers` compiles with the Rust `onig` crate), run by PCRE2 in UTF + UCP mode with JIT.
//
// The two dialects agree on the constructs tokenizer files use ((?i:...), \p{L}, \p{N}, classes,
// look-ahead, alternation order), except for a few escapes whose Unicode meaning differs; those
// are rewritten to Oniguruma's meaning (onig_to_pcre2) and the rest of the escapes that could
// differ are refused, so a pattern never silently matches differently.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct pcre2_real_code_8;

namespace moequant::tokenizer {

// Rewrites an Oniguruma pattern into PCRE2 syntax with the same meaning:
//   \s \S  -> Oniguruma's White_Space set (PCRE2's UCP \s also takes U+180E)
//   \w \W  -> Oniguruma's word set (PCRE2 10.42's UCP \w is \p{L}, \p{N} and '_')
//   \h \H  -> hexadecimal digits (PCRE2's \h is horizontal space)
//   \v     -> U+000B (PCRE2's \v is a class)      \uHHHH -> \x{HHHH}
// Throws naming `where` and the offset for what is refused: \b \B \R \X \K \g \k and other
// letters, \p{..} of anything but a general category (PCRE2 reads scripts as Script_Extensions),
// nested classes, class intersection (&&), some interval forms, and options other than (?i).
std::string onig_to_pcre2(std::string_view pattern, const std::string& where);

class Regex {
 public:
  // Compiles `pattern` (Oniguruma syntax); `where` names it in errors ("file: pre_tokenizer...").
  Regex(std::string_view pattern, std::string where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // The matches [begin, end) in valid UTF-8 `text`, left to right and non-overlapping, as the
  // onig crate's find_iter yields them: an empty match right after the previous match is skipped
  // by advancing one character.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
  std::string where_;
};

// A set of code points given as a PCRE2 class ("[\\p{White_Space}]"): the Unicode properties
// added-token matching needs (Rust's \w and \s), taken from PCRE2's tables instead of our own.
class CodePointClass {
 public:
  explicit CodePointClass(const char* pcre2_class);
  ~CodePointClass();
  CodePointClass(const CodePointClass&) = delete;
  CodePointClass& operator=(const CodePointClass&) = delete;

  // Whether the character starting at text[pos] (valid UTF-8) is in the set.
  bool contains_at(std::string_view text, size_t pos) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
};

}  // namespace moequant::tokenizer
