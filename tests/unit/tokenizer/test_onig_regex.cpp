// The Oniguruma dialect on PCRE2: the split regexes of real tokenizer files give Oniguruma's
// matches (where its Unicode classes differ from PCRE2's), the onig crate's iteration rule, and
// the constructs that are refused instead of silently meaning something else.
#include <gtest/gtest.h>

#include "onig_regex.h"
#include "tokenizer_test_util.h"

namespace moequant::tokenizer::test {
namespace {

// The Split pattern of Qwen2/Qwen3 tokenizer.json files.
constexpr const char* kQwenPattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

std::vector<std::string> pieces(const char* pattern, const std::string& text) {
  const Regex regex(pattern, "test");
  std::vector<std::string> out;
  for (const auto& [b, e] : regex.find_all(text)) out.push_back(text.substr(b, e - b));
  return out;
}

using Strings = std::vector<std::string>;

TEST(OnigRegex, QwenPatternOnEnglish) {
  EXPECT_EQ(pieces(kQwenPattern, "I'm here, DON'T  go 2024!\n\n  ok"),
            (Strings{"I", "'m", " here", ",", " DON", "'T", " ", " go", " ", "2", "0", "2", "4",
                     "!\n\n", " ", " ok"}));
}

// Oniguruma's \s is White_Space: it has U+0085 (NEL) and lacks U+180E, which PCRE2's own \s has.
TEST(OnigRegex, WhitespaceIsOniguruma) {
  EXPECT_EQ(pieces(kQwenPattern, "x\u0085\u0085y"), (Strings{"x", "\u0085", "\u0085y"}));
  EXPECT_EQ(pieces(kQwenPattern, "a\u180e\u180eb"), (Strings{"a", "\u180e\u180e", "b"}));
  EXPECT_EQ(pieces(kQwenPattern, "a\ufeff\ufeffb"), (Strings{"a", "\ufeff\ufeff", "b"}));
  EXPECT_EQ(pieces(kQwenPattern, "a\u3000\u3000b"), (Strings{"a", "\u3000", "\u3000b"}));
}

// (?i:'s) folds case as Oniguruma does, long s (U+017F) included.
TEST(OnigRegex, CaseInsensitiveContractions) {
  EXPECT_EQ(pieces(kQwenPattern, "IT'S it'\u017fa"), (Strings{"IT", "'S", " it", "'\u017f", "a"}));
}

// Oniguruma's \w: Alphabetic, marks, decimal digits, connector punctuation; a bare \w also takes
// the Latin-1 digits ² ³ ¹ ¼ ½ ¾, a \w inside [...] does not.
TEST(OnigRegex, WordClassIsOniguruma) {
  EXPECT_EQ(pieces("\\w+", "a\u2460b_c\u0301\u00b2"), (Strings{"a", "b_c\u0301\u00b2"}));
  EXPECT_EQ(pieces("[\\w]+", "ab\u00b2c"), (Strings{"ab", "c"}));
  EXPECT_EQ(pieces("\\h+", "0xBEEF"), (Strings{"0", "BEEF"}));
}

// The onig crate skips an empty match that comes right after the previous match.
TEST(OnigRegex, EmptyMatchesFollowTheOnigCrate) {
  const Regex regex("a*", "test");
  const std::vector<std::pair<size_t, size_t>> expected = {{0, 0}, {1, 4}, {5, 5}};
  EXPECT_EQ(regex.find_all("baaac"), expected);
}

// The Split patterns of other MoE checkpoints' tokenizer.json files compile (DeepSeek-V3,
// gpt-oss / o200k, Llama 3).
TEST(OnigRegex, CompilesTheSplitPatternsOfOtherModels) {
  for (const char* p :
       {"\\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
        "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+("
        "?"
        "i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+["
        "\\p{"
        "Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n/"
        "]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}) {
    SCOPED_TRACE(p);
    EXPECT_NO_THROW(Regex(p, "test"));
  }
  EXPECT_EQ(pieces("\\p{N}{1,3}", "1234567"), (Strings{"123", "456", "7"}));
}

TEST(OnigRegex, TranslatesEscapesWhoseMeaningDiffers) {
  EXPECT_EQ(onig_to_pcre2("\\s", "t"), "[\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}]");
  EXPECT_EQ(onig_to_pcre2("[^\\s\\p{L}]", "t"), "[^\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}\\p{L}]");
  EXPECT_EQ(onig_to_pcre2("\\v\\u00e9\\.", "t"), "\\x0B\\x{00e9}\\.");
  EXPECT_EQ(onig_to_pcre2("(?i:'s)|\\p{N}{1,3}", "t"), "(?i:'s)|\\p{N}{1,3}");
}

TEST(OnigRegex, RefusesWhatCouldMatchDifferently) {
  for (const char* p : {"\\bword", "\\p{Han}+", "(?m).", "[[:alpha:]]", "[a-z&&[^b]]", "a{,3}",
                        "a{2}+", "\\X", "\\R", "[\\S]", "\\k<n>", "\\1", "\\pL"}) {
    SCOPED_TRACE(p);
    expect_error([&] { Regex regex(p, "file.json: pre_tokenizer.pattern.Regex"); },
                 {"file.json: pre_tokenizer.pattern.Regex", "is not supported"});
  }
  expect_error([] { Regex regex("(ab", "file.json: x"); }, {"file.json: x", "does not compile"});
}

}  // namespace
}  // namespace moequant::tokenizer::test
