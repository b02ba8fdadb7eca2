// Bad tokenizer.json files and bad text: each refused with a message that names the file, the
// JSON entry or component at fault, and for text the source and byte offset.
#include <gtest/gtest.h>

#include "tokenizer_test_util.h"

namespace moequant::tokenizer::test {
namespace {

json good_doc() {
  return tokenizer_doc(bpe_model({"a", "b", "ab"}, {"a b"}));
}

// Loads `doc` from a file, expecting an error that names the file and every one of `parts`.
void expect_load_error(const json& doc, std::vector<std::string> parts) {
  static const std::string dir = temp_dir("bad");
  const std::string path = write_file(dir, "tokenizer.json", doc.dump());
  parts.insert(parts.begin(), path + ": ");
  expect_error([&] { Tokenizer::from_file(path); }, parts);
}

TEST(BadTokenizerJson, UnknownModelType) {
  json doc = good_doc();
  doc["model"]["type"] = "WordPiece";
  expect_load_error(doc, {"model: unsupported model type 'WordPiece'"});
}

TEST(BadTokenizerJson, UnsupportedNormalizerNamesItsPlace) {
  json doc = good_doc();
  doc["normalizer"] = {{"type", "Lowercase"}};
  expect_load_error(doc, {"normalizer: unsupported normalizer type 'Lowercase'"});
  doc["normalizer"] = {{"type", "Sequence"},
                       {"normalizers", {{{"type", "NFC"}}, {{"type", "BertNormalizer"}}}}};
  expect_load_error(doc,
                    {"normalizer.normalizers[1]: unsupported normalizer type 'BertNormalizer'"});
}

TEST(BadTokenizerJson, UnsupportedPreTokenizerNamesItsPlace) {
  json doc = good_doc();
  doc["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}}}};
  expect_load_error(doc,
                    {"pre_tokenizer.pretokenizers[0]: unsupported pre-tokenizer type 'Digits'"});
  doc["pre_tokenizer"] = {{"type", "Split"},
                          {"pattern", {{"Regex", "\\w+"}}},
                          {"behavior", "Sideways"},
                          {"invert", false}};
  expect_load_error(doc, {"pre_tokenizer.behavior: unsupported split behavior 'Sideways'"});
  doc["pre_tokenizer"] = {{"type", "Split"},
                          {"pattern", {{"Regex", "\\p{Han}+"}}},
                          {"behavior", "Isolated"},
                          {"invert", false}};
  expect_load_error(doc, {"pre_tokenizer.pattern.Regex", "\\p{Han}", "is not supported"});
  doc["pre_tokenizer"] = {{"type", "Split"},
                          {"pattern", {{"String", " "}, {"Regex", "\\s"}}},
                          {"behavior", "Isolated"},
                          {"invert", false}};
  expect_load_error(doc, {"pre_tokenizer.pattern: expected one of String or Regex"});
  doc["pre_tokenizer"]["pattern"] = {{"String", ""}};
  expect_load_error(doc, {"pre_tokenizer.pattern.String: empty pattern is not supported"});
  doc["pre_tokenizer"] = {{"type", "Metaspace"},
                          {"replacement", "\u2581"},
                          {"add_prefix_space", false},
                          {"prepend_scheme", "always"}};
  expect_load_error(doc, {"pre_tokenizer: add_prefix_space false does not match"});
}

TEST(BadTokenizerJson, UnsupportedPostProcessorAndTemplate) {
  json doc = good_doc();
  doc["post_processor"] = {{"type", "RobertaProcessing"}};
  expect_load_error(doc, {"post_processor: unsupported post-processor type 'RobertaProcessing'"});
  doc["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}}},
                           {"pair", json::array()},
                           {"special_tokens", json::object()}};
  expect_load_error(doc, {"post_processor.single[0].SpecialToken: special token '<s>' is not in"});
}

TEST(BadTokenizerJson, UnimplementedFlagsAndFields) {
  const auto with_model = [](const char* key, json value) {
    json doc = good_doc();
    doc["model"][key] = std::move(value);
    return doc;
  };
  expect_load_error(with_model("dropout", 0.1), {"model.dropout: unsupported value 0.1"});
  expect_load_error(with_model("continuing_subword_prefix", "##"),
                    {"model.continuing_subword_prefix: unsupported value '##'"});
  expect_load_error(with_model("end_of_word_suffix", "</w>"), {"model.end_of_word_suffix"});
  expect_load_error(with_model("future_flag", true), {"model: unsupported field 'future_flag'"});
  expect_load_error(with_model("byte_fallback", "yes"),
                    {"model.byte_fallback: expected true or false"});
  json doc = good_doc();
  doc["truncation"] = {{"max_length", 512}};
  expect_load_error(doc, {"truncation: only null is implemented"});
  doc = good_doc();
  doc["version"] = "2.0";
  expect_load_error(doc, {"version: unsupported version '2.0'"});
  doc = good_doc();
  doc["pre_tokenizer"] = {{"type", "ByteLevel"},
                          {"add_prefix_space", false},
                          {"trim_offsets", false},
                          {"use_regex", true},
                          {"split_digits", true}};
  expect_load_error(doc, {"pre_tokenizer: unsupported field 'split_digits'"});
}

TEST(BadTokenizerJson, MalformedMerges) {
  const auto with_merges = [](json merges) {
    json doc = good_doc();
    doc["model"]["merges"] = std::move(merges);
    return doc;
  };
  expect_load_error(with_merges({{"a", 1}}), {"model.merges: expected an array (got object)"});
  expect_load_error(with_merges({"a b", {"a", "b"}}), {"model.merges[1]: expected a string"});
  expect_load_error(with_merges({{"a", "b"}, "a b"}),
                    {"model.merges[1]: expected a pair of strings"});
  expect_load_error(with_merges({{"a", "b", "c"}}),
                    {"model.merges[0]: expected a pair of strings"});
  expect_load_error(with_merges({"a b", "ab"}),
                    {"model.merges[1]: expected two tokens separated by one space"});
  expect_load_error(with_merges({"a  b"}), {"model.merges[0]"});
  expect_load_error(with_merges({"a z"}),
                    {"model.merges[0] ('a' 'z'): token 'z' is not in the vocab"});
  expect_load_error(with_merges({"a b", "b a"}),
                    {"model.merges[1] ('b' 'a'): token 'ba' is not in the vocab"});
  json doc = good_doc();
  doc["model"].erase("merges");
  expect_load_error(doc, {"model: missing field 'merges'"});
  doc = good_doc();
  doc["model"]["vocab"]["c"] = -3;
  expect_load_error(doc, {"model.vocab[\"c\"]: id -3 is out of range"});
}

TEST(BadTokenizerJson, BrokenJsonAndMissingFile) {
  const std::string dir = temp_dir("broken");
  const std::string path = write_file(dir, "tokenizer.json", "{\"version\": \"1.0\", \"model\": {");
  expect_error([&] { Tokenizer::from_file(path); }, {path + ": not valid JSON"});
  expect_error([&] { Tokenizer::from_file(dir + "/missing.json"); },
               {dir + "/missing.json: cannot open"});
  expect_error([&] { load(json::array()); }, {"test/tokenizer.json: expected an object"});
}

TEST(BadText, InvalidUtf8NamesTheSourceAndOffset) {
  const Tokenizer tok = load(good_doc());
  expect_error([&] { tok.encode("ab\xC3", true, "calib.txt"); },
               {"calib.txt: invalid UTF-8 at byte offset 2 (byte 0xC3)"});
  expect_error([&] { tok.encode("abcdefghij\xED\xA0\x80"); },  // a surrogate
               {"text: invalid UTF-8 at byte offset 10 (byte 0xED)"});
  expect_error([&] { tok.encode("\xC0\xAF"); }, {"offset 0"});            // an overlong '/'
  expect_error([&] { tok.encode("ab\xF4\x90\x80\x80"); }, {"offset 2"});  // above U+10FFFF
  EXPECT_EQ(tok.encode("ab\xF4\x8F\xBF\xBF").size(), 1u);  // U+10FFFF is fine (and unknown)
}

TEST(BadText, UnknownTokenMissingFromTheVocab) {
  json doc = good_doc();
  doc["model"]["unk_token"] = "<unk>";
  const Tokenizer tok = load(doc);
  EXPECT_EQ(tok.encode("ab").size(), 1u);
  expect_error([&] { tok.encode("abc"); },
               {"test/tokenizer.json: model: unk_token '<unk>' is not in the vocab"});
}

}  // namespace
}  // namespace moequant::tokenizer::test
