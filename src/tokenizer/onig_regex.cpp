#include "onig_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>
#include <memory>

#include "moequant/common/error.h"
#include "utf8.h"

namespace moequant::tokenizer {

namespace {

// Oniguruma's \s in Unicode mode: U+0009..U+000D, U+0085 and the Z categories (Zs, Zl, Zp),
// i.e. the White_Space property.
constexpr const char* kOnigSpaceMembers = "\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}";
// Oniguruma's \w in UTF-8 is its Word table (Alphabetic, Mark, Decimal_Number,
// Connector_Punctuation); a bare \w (not inside [...]) checks code points below U+0100 with its
// Latin-1 table instead, which also takes ² ³ ¹ ¼ ½ ¾. Both checked against libonig on every
// code point.
constexpr const char* kOnigWordMembers = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}";
constexpr const char* kOnigBareWordMembers =
    "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}";
// Oniguruma's \h: a hexadecimal digit.
constexpr const char* kOnigHexMembers = "0-9a-fA-F";

// The general categories \p{..} may name: PCRE2 10.42 reads a script name (\p{Han}) as
// Script_Extensions, Oniguruma as Script, so scripts and other properties are refused.
bool is_general_category(std::string_view name) {
  static const char* const kNames[] = {"L",  "Lu", "Ll", "Lt", "Lm", "Lo", "M",  "Mn", "Mc",
                                       "Me", "N",  "Nd", "Nl", "No", "P",  "Pc", "Pd", "Ps",
                                       "Pe", "Pi", "Pf", "Po", "S",  "Sm", "Sc", "Sk", "So",
                                       "Z",  "Zs", "Zl", "Zp", "C",  "Cc", "Cf", "Co", "Cn"};
  if (!name.empty() && name[0] == '^') name.remove_prefix(1);
  for (const char* n : kNames)
    if (name == n) return true;
  return false;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

pcre2_code* compile_pcre2(const std::string& pattern, const std::string& where) {
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  std::unique_ptr<pcre2_compile_context, decltype(&pcre2_compile_context_free)> context(
      pcre2_compile_context_create(nullptr), &pcre2_compile_context_free);
  // Oniguruma's '.' stops at '\n' only, and its '^'/'$' are line anchors (MULTILINE).
  pcre2_set_newline(context.get(), PCRE2_NEWLINE_LF);
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error, &error_offset, context.get());
  MQ_CHECK(code != nullptr, where, ": regex does not compile (", pcre2_message(error),
           " at offset ", error_offset, " of the PCRE2 form '", pattern, "')");
  // JIT where the library has it; the interpreter gives the same matches otherwise.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return code;
}

// Per-thread matching state: match data for one pair of offsets, and a JIT stack large enough
// for long runs of one class (the default 32 KiB is not).
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  MatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchState() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

}  // namespace

std::string onig_to_pcre2(std::string_view p, const std::string& where) {
  std::string out;
  out.reserve(p.size() * 2);
  bool in_class = false;
  const auto refuse = [&](size_t at, const std::string& what) {
    MQ_THROW(where, ": regex '", std::string(p), "': ", what, " at offset ", at,
             " is not supported (its meaning differs between Oniguruma and PCRE2)");
  };
  // A class written as members inside [...], or as a whole class outside.
  const auto put_class = [&](const char* members, bool negated, size_t at) {
    if (in_class) {
      if (negated) refuse(at, "a negated class escape inside [...]");
      out += members;
    } else {
      out += negated ? "[^" : "[";
      out += members;
      out += ']';
    }
  };
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) refuse(i, "a trailing backslash");
      const char e = p[++i];
      switch (e) {
        case 's':
        case 'S':
          put_class(kOnigSpaceMembers, e == 'S', i - 1);
          break;
        case 'w':
        case 'W':
          put_class(in_class ? kOnigWordMembers : kOnigBareWordMembers, e == 'W', i - 1);
          break;
        case 'h':
        case 'H':
          put_class(kOnigHexMembers, e == 'H', i - 1);
          break;
        case 'v':
          out += "\\x0B";
          break;
        case 'u': {
          if (i + 4 >= p.size()) refuse(i - 1, "a short \\u escape");
          const std::string_view hex = p.substr(i + 1, 4);
          for (char h : hex)
            if (!std::isxdigit(static_cast<unsigned char>(h))) refuse(i - 1, "a bad \\u escape");
          out += "\\x{";
          out += hex;
          out += '}';
          i += 4;
          break;
        }
        case 'p':
        case 'P': {
          // Only the braced form \p{Name}, \p{^Name}, as Oniguruma writes it.
          if (i + 1 >= p.size() || p[i + 1] != '{') refuse(i - 1, "\\p without braces");
          const size_t close = p.find('}', i);
          if (close == std::string_view::npos) refuse(i - 1, "an unterminated \\p{");
          const std::string_view name = p.substr(i + 2, close - i - 2);
          if (!is_general_category(name)) {
            refuse(i - 1, "\\p{" + std::string(name) + "} (only general categories like L, N, Lu)");
          }
          out += '\\';
          out += p.substr(i, close - i + 1);
          i = close;
          break;
        }
        case 'x':
        case 'd':
        case 'D':
        case 'n':
        case 'r':
        case 't':
        case 'f':
        case 'e':
        case 'a':
        case 'A':
        case 'z':
        case 'Z':
        case 'G':
          out += '\\';
          out += e;
          break;
        default:
          if (std::isalnum(static_cast<unsigned char>(e))) {
            refuse(i - 1, std::string("the escape \\") + e);
          }
          // An escaped symbol is that symbol in both dialects; copy a whole UTF-8 character.
          out += '\\';
          out += p.substr(i, utf8_length(static_cast<unsigned char>(e)));
          i += utf8_length(static_cast<unsigned char>(e)) - 1;
      }
      continue;
    }
    if (in_class) {
      if (c == '[') refuse(i, "a nested class or POSIX bracket");
      if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') refuse(i, "class intersection &&");
      if (c == ']') in_class = false;
      out += c;
      continue;
    }
    if (c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal in both dialects.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == '{') {
      // Intervals: Oniguruma reads {,n} as {0,n} (PCRE2 10.42 as text), {n}? as ({n})? and
      // {n,m}+ as ({n,m})+ (PCRE2: lazy, possessive).
      size_t j = i + 1;
      while (j < p.size() && (std::isdigit(static_cast<unsigned char>(p[j])) || p[j] == ',')) ++j;
      if (j < p.size() && p[j] == '}' && j > i + 1) {
        if (p[i + 1] == ',') refuse(i, "the interval {,n}");
        if (j + 1 < p.size() && (p[j + 1] == '?' || p[j + 1] == '+')) {
          refuse(i, "an interval followed by ? or +");
        }
      }
    }
    if (c == '(' && i + 1 < p.size() && p[i + 1] == '?') {
      // Option letters: Oniguruma's (?m) is PCRE2's (?s); accept only case folding.
      size_t j = i + 2;
      while (j < p.size() && (std::isalpha(static_cast<unsigned char>(p[j])) || p[j] == '-')) {
        if (p[j] != 'i' && p[j] != '-') refuse(i, std::string("the option (?") + p[j]);
        ++j;
      }
    }
    out += c;
  }
  return out;
}

Regex::Regex(std::string_view pattern, std::string where) : where_(std::move(where)) {
  code_ = compile_pcre2(onig_to_pcre2(pattern, where_), where_);
}

Regex::~Regex() {
  pcre2_code_free(code_);
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  MatchState& state = match_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(code_, subject, text.size(), start, PCRE2_NO_UTF_CHECK, state.data,
                               state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    MQ_CHECK(rc >= 0, where_, ": regex match failed (", pcre2_message(rc), ")");
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
    const size_t b = ovector[0], e = ovector[1];
    if (b == e && have_last && last_end == e) {
      // The onig crate's rule against looping on an empty match: step over one character.
      if (start >= text.size()) break;
      start += utf8_length(static_cast<unsigned char>(text[start]));
      continue;
    }
    matches.emplace_back(b, e);
    have_last = true;
    last_end = e;
    start = e;
  }
  return matches;
}

CodePointClass::CodePointClass(const char* pcre2_class) {
  code_ = compile_pcre2(pcre2_class, std::string("character class ") + pcre2_class);
}

CodePointClass::~CodePointClass() {
  pcre2_code_free(code_);
}

bool CodePointClass::contains_at(std::string_view text, size_t pos) const {
  MatchState& state = match_state();
  const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos,
                             PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, state.data, state.context);
  return rc >= 0;
}

}  // namespace moequant::tokenizer
