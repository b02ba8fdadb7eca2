// The split behaviors, Metaspace and the byte-level alphabet, on the examples of Hugging Face
// `tokenizers`' own tests (pre_tokenizers/split.rs, pre_tokenizers/metaspace.rs).
#include <gtest/gtest.h>

#include "byte_level.h"
#include "json_fields.h"
#include "pre_tokenizers.h"
#include "splitting.h"
#include "tokenizer_test_util.h"

namespace moequant::tokenizer::test {
namespace {

std::vector<std::string> pre_tokenize(const json& config, const std::vector<std::string>& texts) {
  static const std::string file = "test.json";
  const auto pre = make_pre_tokenizer(JsonAt(config, file, "pre_tokenizer"));
  std::vector<Piece> pieces;
  for (size_t i = 0; i < texts.size(); ++i) pieces.push_back({texts[i], i == 0});
  pre->pre_tokenize(pieces);
  std::vector<std::string> out;
  for (const Piece& p : pieces) out.push_back(p.text);
  return out;
}

json split(const std::string& regex, const std::string& behavior, bool invert) {
  return {{"type", "Split"},
          {"pattern", {{"Regex", regex}}},
          {"behavior", behavior},
          {"invert", invert}};
}

using Strings = std::vector<std::string>;

// split.rs "basic": the words of "How are you doing?" matched (invert) with \w+|[^\w\s]+.
TEST(Split, TheFiveBehaviors) {
  const Strings text = {"How are you doing?"};
  const std::string words = "\\w+|[^\\w\\s]+";
  EXPECT_EQ(pre_tokenize(split(words, "Removed", true), text),
            (Strings{"How", "are", "you", "doing", "?"}));
  EXPECT_EQ(pre_tokenize(split(words, "Isolated", true), text),
            (Strings{"How", " ", "are", " ", "you", " ", "doing", "?"}));
  EXPECT_EQ(pre_tokenize(split(words, "MergedWithPrevious", true), text),
            (Strings{"How ", "are ", "you ", "doing", "?"}));
  EXPECT_EQ(pre_tokenize(split(words, "MergedWithNext", true), text),
            (Strings{"How", " are", " you", " doing", "?"}));
  EXPECT_EQ(pre_tokenize(split(words, "Contiguous", true), text),
            (Strings{"How", " ", "are", " ", "you", " ", "doing?"}));
}

// split.rs "regex_string" and "invert": a literal and a regex split alike; inverting a literal.
TEST(Split, LiteralRegexAndInvert) {
  json literal = split("", "Removed", false);
  literal["pattern"] = {{"String", " "}};
  EXPECT_EQ(pre_tokenize(literal, {"Hey, man!"}),
            pre_tokenize(split("\\s+", "Removed", false), {"Hey, man!"}));
  json inverted = split("", "Removed", true);
  inverted["pattern"] = {{"String", "Hello"}};
  EXPECT_EQ(pre_tokenize(inverted, {"Hello Hello Hello"}),
            pre_tokenize(literal, {"Hello Hello Hello"}));
}

json metaspace(const std::string& scheme, bool split_pieces) {
  return {{"type", "Metaspace"},
          {"replacement", "\u2581"},
          {"prepend_scheme", scheme},
          {"split", split_pieces}};
}

// metaspace.rs "basic", "multiple_spaces" and "non_legacy_meta_space".
TEST(Metaspace, PrependSchemesAndSplit) {
  EXPECT_EQ(pre_tokenize(metaspace("always", true), {"Hey friend!"}),
            (Strings{"\u2581Hey", "\u2581friend!"}));
  EXPECT_EQ(pre_tokenize(metaspace("always", true), {"Hey   friend!"}),
            (Strings{"\u2581Hey", "\u2581", "\u2581", "\u2581friend!"}));
  const json first_then_always = {
      {"type", "Sequence"},
      {"pretokenizers", {split("(<s>)", "Isolated", false), metaspace("first", false)}}};
  const Strings pieces = pre_tokenize(first_then_always, {"Hey my friend <s>how\u2581are you"});
  EXPECT_EQ(pieces,
            (Strings{"\u2581Hey\u2581my\u2581friend\u2581", "<s>", "how\u2581are\u2581you"}));
  EXPECT_EQ(pre_tokenize(metaspace("always", true), pieces),
            (Strings{"\u2581Hey", "\u2581my", "\u2581friend", "\u2581", "\u2581<s>", "\u2581how",
                     "\u2581are", "\u2581you"}));
  EXPECT_EQ(pre_tokenize(first_then_always, {" Hey <s>how"}),
            (Strings{"\u2581Hey\u2581", "<s>", "how"}));
  EXPECT_EQ(pre_tokenize(metaspace("never", true), {"Hey friend"}),
            (Strings{"Hey", "\u2581friend"}));
  json legacy = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", false}};
  EXPECT_EQ(pre_tokenize(legacy, {"Hey friend"}), (Strings{"Hey", "\u2581friend"}));
}

TEST(ByteLevel, Gpt2Alphabet) {
  const auto& a = byte_level_alphabet();
  EXPECT_EQ(a['A'], "A");
  EXPECT_EQ(a['~'], "~");
  EXPECT_EQ(a[0x00], "\u0100");
  EXPECT_EQ(a[' '], "\u0120");   // Ġ
  EXPECT_EQ(a['\n'], "\u010a");  // Ċ
  EXPECT_EQ(a[0x7F], "\u0121");
  EXPECT_EQ(a[0xA0], "\u0142");
  EXPECT_EQ(a[0xAD], "\u0143");
  EXPECT_EQ(a[0xFF], "\u00ff");
  EXPECT_EQ(byte_level_encode("a \xC3\xA9"), "a\u0120\u00c3\u00a9");
  std::set<std::string> distinct(a.begin(), a.end());
  EXPECT_EQ(distinct.size(), 256u);
}

TEST(ByteLevel, PrefixSpaceAndGpt2Split) {
  const json config = {{"type", "ByteLevel"},
                       {"add_prefix_space", true},
                       {"trim_offsets", true},
                       {"use_regex", true}};
  EXPECT_EQ(pre_tokenize(config, {"Hello  world's 123!"}),
            (Strings{"\u0120Hello", "\u0120", "\u0120world", "'s", "\u0120123", "!"}));
}

}  // namespace
}  // namespace moequant::tokenizer::test
