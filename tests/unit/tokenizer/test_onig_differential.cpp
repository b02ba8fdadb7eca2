// The PCRE2 form of Oniguruma patterns against Oniguruma itself (libonig, the engine Hugging Face
// `tokenizers` runs through the Rust onig crate): the split patterns of real tokenizer files on
// random strings of a Unicode-heavy alphabet, and the escape classes on every code point. Built
// only where libonig-dev is installed (tests/unit/tokenizer/CMakeLists.txt).
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "onig_reference.h"
#include "onig_regex.h"
#include "utf8.h"

namespace moequant::tokenizer {
namespace {

std::string hex(const std::string& s) {
  std::string out;
  char b[4];
  for (unsigned char c : s) {
    std::snprintf(b, sizeof(b), "%02X ", c);
    out += b;
  }
  return out;
}

TEST(OnigDifferential, TokenizerSplitPatternsOnRandomText) {
  const char* patterns[] = {
      // Qwen2/Qwen3
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      // GPT-2 (ByteLevel use_regex)
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
      // Llama 3 style
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      "\\w+|[^\\w\\s]+", "\\W+|\\d+|\\h+|\\S\\s",
      // DeepSeek-V3 and gpt-oss (o200k)
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
      "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?"
      "i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{"
      "Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n/"
      "]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      // anchors and '.', which Oniguruma reads line by line
      "^\\s*\\S+$|.", "^.|.$|\\A\\s|\\s\\z"};
  // ASCII, every kind of space, letters and marks of many scripts, digits of several kinds,
  // case-folding oddities (ſ, K, İ, ß), emoji parts, CJK and private use.
  std::vector<uint32_t> alphabet;
  for (uint32_t c = 0; c < 0x80; ++c) alphabet.push_back(c);
  for (uint32_t c :
       {0x85u,   0xA0u,    0xADu,     0xB2u,   0xBDu,   0xDFu,    0xE9u,    0x130u,   0x131u,
        0x17Fu,  0x212Au,  0x1680u,   0x180Eu, 0x2000u, 0x200Au,  0x200Bu,  0x200Cu,  0x200Du,
        0x2028u, 0x2029u,  0x202Fu,   0x205Fu, 0x3000u, 0xFEFFu,  0x301u,   0x308u,   0x93Fu,
        0x94Du,  0x915u,   0x660u,    0x966u,  0xFF11u, 0x2162u,  0x2460u,  0x627u,   0x64Eu,
        0x5D0u,  0xE01u,   0xE31u,    0x4E00u, 0x3042u, 0x30A2u,  0xFF71u,  0xAC00u,  0x1100u,
        0x1161u, 0x1F600u, 0x1F1EFu,  0xFE0Fu, 0x20E3u, 0x1F3FBu, 0x20000u, 0x1D518u, 0x203Fu,
        0xFB01u, 0x3C2u,   0x10FFFDu, 0xE000u})
    alphabet.push_back(c);
  std::mt19937 rng(7);
  for (const char* pattern : patterns) {
    SCOPED_TRACE(pattern);
    const test::OnigReference reference(pattern);
    const Regex ours(pattern, "test");
    int failures = 0;
    for (int t = 0; t < 50000 && failures < 5; ++t) {
      std::string text;
      for (int n = rng() % 14; n > 0; --n) {
        const uint32_t c =
            rng() % 3 ? alphabet[rng() % alphabet.size()] : " \n\r\t'sS1."[rng() % 9];
        append_utf8(c, text);
      }
      if (ours.find_all(text) != reference.find_all(text)) {
        ADD_FAILURE() << "differs on bytes " << hex(text);
        ++failures;
      }
    }
  }
}

TEST(OnigDifferential, EscapeClassesOnEveryCodePoint) {
  for (const char* pattern :
       {"\\s", "\\S", "\\w", "\\W", "\\d", "\\h", "[\\w]", "[^\\s\\p{L}\\p{N}]", "\\p{L}", "\\p{N}",
        "\\p{M}", "(?i:s)", "(?i:k)"}) {
    SCOPED_TRACE(pattern);
    const test::OnigReference reference(pattern);
    const Regex ours(pattern, "test");
    int failures = 0;
    for (uint32_t cp = 0; cp < 0x110000 && failures < 5; ++cp) {
      if (cp >= 0xD800 && cp < 0xE000) continue;
      std::string text;
      append_utf8(cp, text);
      if (ours.find_all(text) != reference.find_all(text)) {
        ADD_FAILURE() << "differs on U+" << std::hex << cp;
        ++failures;
      }
    }
  }
}

}  // namespace
}  // namespace moequant::tokenizer
