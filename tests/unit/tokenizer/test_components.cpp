// Each component of the pipeline on small tokenizer.json documents whose ids can be worked out by
// hand from the rules of Hugging Face `tokenizers` (models/bpe, AddedVocabulary, normalizers,
// post-processors).
#include <gtest/gtest.h>

#include "tokenizer_test_util.h"

namespace moequant::tokenizer::test {
namespace {

using Ids = std::vector<int32_t>;

TEST(Bpe, MergesApplyByRank) {
  const std::vector<std::string> tokens = {"a", "b", "c", "ab", "bc"};
  EXPECT_EQ(load(tokenizer_doc(bpe_model(tokens, {"b c", "a b"}))).encode("abc"), (Ids{0, 4}));
  EXPECT_EQ(load(tokenizer_doc(bpe_model(tokens, {"a b", "b c"}))).encode("abc"), (Ids{3, 2}));
}

TEST(Bpe, EqualRanksMergeLeftmostFirstAndMergesChain) {
  const Tokenizer tok = load(tokenizer_doc(bpe_model({"a", "aa", "aaaa"}, {"a a", "aa aa"})));
  EXPECT_EQ(tok.encode("aaa"), (Ids{1, 0}));
  EXPECT_EQ(tok.encode("aaaa"), (Ids{2}));
  EXPECT_EQ(tok.encode("aaaaa"), (Ids{2, 0}));
}

TEST(Bpe, MergesAsPairsAsStringsAndWithVersionHeaderAgree) {
  json pairs = bpe_model({"a", "aa", "aaaa"});
  pairs["merges"] = json::array({json::array({"a", "a"}), json::array({"aa", "aa"})});
  json header = bpe_model({"a", "aa", "aaaa"}, {"#version: 0.2", "a a", "aa aa"});
  for (const json& model : {pairs, header}) {
    EXPECT_EQ(load(tokenizer_doc(model)).encode("aaaaaaa"), (Ids{2, 1, 0}));
  }
}

TEST(Bpe, ByteFallbackAndUnknownTokens) {
  json model = bpe_model({"<unk>", "a", "<0xC3>", "<0xA9>"});
  model["unk_token"] = "<unk>";
  model["byte_fallback"] = true;
  model["fuse_unk"] = true;
  const Tokenizer fused = load(tokenizer_doc(model));
  EXPECT_EQ(fused.encode("a\u00e9"), (Ids{1, 2, 3}));     // é is missing: its bytes
  EXPECT_EQ(fused.encode("a\u20ac"), (Ids{1, 0}));        // € and its bytes are missing: <unk>
  EXPECT_EQ(fused.encode("\u20ac\u20aca"), (Ids{0, 1}));  // consecutive unknowns fused
  // tokenizers adds fallback bytes without flushing a pending unknown token first.
  EXPECT_EQ(fused.encode("\u20ac\u00e9"), (Ids{2, 3, 0}));
  model["fuse_unk"] = false;
  EXPECT_EQ(load(tokenizer_doc(model)).encode("\u20ac\u20aca"), (Ids{0, 0, 1}));
  model["unk_token"] = nullptr;
  model["byte_fallback"] = false;
  EXPECT_EQ(load(tokenizer_doc(model)).encode("a\u20aca\u00e9"), (Ids{1, 1}));  // dropped
}

TEST(Bpe, IgnoreMergesTakesWholeWordsFromTheVocab) {
  json model = bpe_model({"a", "b", "c", "ab", "abc"}, {"a b"});
  EXPECT_EQ(load(tokenizer_doc(model)).encode("abc"), (Ids{3, 2}));
  model["ignore_merges"] = true;
  EXPECT_EQ(load(tokenizer_doc(model)).encode("abc"), (Ids{4}));
  EXPECT_EQ(load(tokenizer_doc(model)).encode("abcab"), (Ids{3, 2, 3}));  // not in the vocab
}

TEST(AddedTokens, IdsComeFromTheVocabOrFollowIt) {
  json doc = tokenizer_doc(bpe_model({"a", "b", "<s>"}));
  doc["added_tokens"] = {added_token(99, "<s>"), added_token(5, "<x>"),
                         added_token(7, "<y>", false)};
  const Tokenizer tok = load(doc);
  EXPECT_EQ(tok.token_to_id("<s>"), 2);
  EXPECT_EQ(tok.token_to_id("<x>"), 3);
  EXPECT_EQ(tok.token_to_id("<y>"), 4);
  EXPECT_EQ(tok.vocab_size(), 5u);
  EXPECT_EQ(tok.encode("a<x>b<s><y><y>"), (Ids{0, 3, 1, 2, 4, 4}));
}

TEST(AddedTokens, LeftmostLongestMatchWins) {
  json doc = tokenizer_doc(bpe_model({"a"}));
  doc["added_tokens"] = {added_token(1, "<a>"), added_token(2, "<a><b>"), added_token(3, "<b>")};
  EXPECT_EQ(load(doc).encode("<a><b><a>a<b>"), (Ids{2, 1, 0, 3}));
}

TEST(AddedTokens, LstripAndRstripTakeUnicodeWhitespace) {
  json doc = tokenizer_doc(bpe_model({" ", "a", "b", "\u3000"}));
  doc["added_tokens"] = {added_token(4, "<m>")};
  EXPECT_EQ(load(doc).encode("a \u3000<m> b"), (Ids{1, 0, 3, 4, 0, 2}));
  doc["added_tokens"][0]["lstrip"] = true;
  EXPECT_EQ(load(doc).encode("a \u3000<m> b"), (Ids{1, 4, 0, 2}));
  doc["added_tokens"][0]["rstrip"] = true;
  EXPECT_EQ(load(doc).encode("a \u3000<m> \t\n b"), (Ids{1, 4, 2}));
  EXPECT_EQ(load(doc).encode("<m> <m>"), (Ids{4, 4}));
}

TEST(AddedTokens, SingleWordMatchesOnlyWholeWords) {
  json doc = tokenizer_doc(bpe_model({" ", "a", "b", "x", "_", ".", "\u00e9"}));
  json token = added_token(7, "ab", false);
  token["single_word"] = true;
  doc["added_tokens"] = {token};
  const Tokenizer tok = load(doc);
  EXPECT_EQ(tok.encode("x ab x"), (Ids{3, 0, 7, 0, 3}));
  EXPECT_EQ(tok.encode("ab.ab"), (Ids{7, 5, 7}));
  EXPECT_EQ(tok.encode("xab"), (Ids{3, 1, 2}));
  EXPECT_EQ(tok.encode("ab_"), (Ids{1, 2, 4}));                // '_' is a word character
  EXPECT_EQ(tok.encode("ab\u00e9 ab"), (Ids{1, 2, 6, 0, 7}));  // so is é
}

// A Llama-2-style normalizer (Prepend + Replace) runs on each piece between raw added tokens;
// normalized added tokens are matched by their normalized form.
TEST(AddedTokens, NormalizedTokensMatchNormalizedText) {
  json doc = tokenizer_doc(bpe_model({"\u2581", "a", "b", "x", "\u2581x"}, {"\u2581 x"}));
  doc["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", "\u2581"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}};
  doc["added_tokens"] = {added_token(5, "ab", false, true), added_token(6, "<s>")};
  const Tokenizer tok = load(doc);
  EXPECT_EQ(tok.encode("ab"), (Ids{5}));
  EXPECT_EQ(tok.encode("x ab"), (Ids{4, 5}));
  EXPECT_EQ(tok.encode("xab"), (Ids{4, 1, 2}));
  EXPECT_EQ(tok.encode("x<s>x"), (Ids{4, 6, 4}));
  EXPECT_EQ(tok.encode("<s> x"), (Ids{6, 0, 4}));
  EXPECT_EQ(tok.encode(""), (Ids{}));
}

TEST(Normalizers, UnicodeNormalForms) {
  json doc = tokenizer_doc(bpe_model({"\u00e9", "e", "\u0301", "f", "i", "\ufb01"}));
  const auto with = [&](const char* form) {
    doc["normalizer"] = {{"type", form}};
    return load(doc);
  };
  EXPECT_EQ(with("NFC").encode("e\u0301\u00e9"), (Ids{0, 0}));
  EXPECT_EQ(with("NFD").encode("e\u0301\u00e9"), (Ids{1, 2, 1, 2}));
  EXPECT_EQ(with("NFKC").encode("\ufb01e\u0301"), (Ids{3, 4, 0}));
  EXPECT_EQ(with("NFKD").encode("\ufb01\u00e9"), (Ids{3, 4, 1, 2}));
  doc["normalizer"] = nullptr;
  EXPECT_EQ(load(doc).encode("\ufb01e\u0301"), (Ids{5, 1, 2}));
}

TEST(Normalizers, ReplaceWithRegex) {
  json doc = tokenizer_doc(bpe_model({"a", "-"}));
  doc["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", "-"}};
  EXPECT_EQ(load(doc).encode("a  \t a\u3000a"), (Ids{0, 1, 0, 1, 0}));
}

TEST(PostProcessors, TemplateAddsSpecialTokensOnlyWhenAsked) {
  json doc = tokenizer_doc(bpe_model({"a", "<s>"}));
  doc["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
        {{"SpecialToken", {{"id", "<end>"}, {"type_id", 0}}}}}},
      {"pair",
       {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens",
       {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}},
        {"<end>", {{"id", "<end>"}, {"ids", {7, 8}}, {"tokens", {"<e>", "<nd>"}}}}}}};
  const Tokenizer tok = load(doc);
  EXPECT_EQ(tok.encode("aa"), (Ids{1, 0, 0, 7, 8}));
  EXPECT_EQ(tok.encode("aa", false), (Ids{0, 0}));
  EXPECT_EQ(tok.encode(""), (Ids{1, 7, 8}));
  // ByteLevel changes offsets only; in a Sequence the template still applies.
  doc["post_processor"] = {{"type", "Sequence"},
                           {"processors",
                            {{{"type", "ByteLevel"},
                              {"add_prefix_space", false},
                              {"trim_offsets", false},
                              {"use_regex", false}},
                             doc["post_processor"]}}};
  EXPECT_EQ(load(doc).encode("a"), (Ids{1, 0, 7, 8}));
}

TEST(PreTokenizers, MergesDoNotCrossPieces) {
  json doc = tokenizer_doc(bpe_model({"a", "b", "ab"}, {"a b"}));
  EXPECT_EQ(load(doc).encode("ab"), (Ids{2}));
  doc["pre_tokenizer"] = {{"type", "Split"},
                          {"pattern", {{"String", "b"}}},
                          {"behavior", "Isolated"},
                          {"invert", false}};
  EXPECT_EQ(load(doc).encode("ab"), (Ids{0, 1}));
}

TEST(PreTokenizers, ByteLevelWithGpt2Regex) {
  // "Ġ" is the byte-level character of the space byte.
  json doc = tokenizer_doc(bpe_model({"H", "i", "\u0120", "Hi", "\u0120i"}, {"H i", "\u0120 i"}));
  doc["pre_tokenizer"] = {{"type", "ByteLevel"},
                          {"add_prefix_space", false},
                          {"trim_offsets", true},
                          {"use_regex", true}};
  EXPECT_EQ(load(doc).encode("Hi i"), (Ids{3, 4}));
  doc["pre_tokenizer"]["add_prefix_space"] = true;
  EXPECT_EQ(load(doc).encode("Hi i"), (Ids{2, 3, 4}));
}

}  // namespace
}  // namespace moequant::tokenizer::test
