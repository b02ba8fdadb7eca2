// read_text_samples: .jsonl and .txt calibration text, and the errors that name file:line.
#include <gtest/gtest.h>

#include "moequant/tokenizer/text_corpus.h"
#include "tokenizer_test_util.h"

namespace moequant::tokenizer::test {
namespace {

using Strings = std::vector<std::string>;

std::string dir() {
  static const std::string d = temp_dir("corpus");
  return d;
}

TEST(TextCorpus, JsonlSamples) {
  const std::string path = write_file(
      dir(), "ok.jsonl",
      "{\"text\": \"first\", \"source\": \"x\"}\n\n  \n{\"text\": \"with\\nnewline \\u00e9\"}\r\n"
      "{\"text\": \"\"}\n{\"id\": 3, \"text\": \"last, no newline\"}");
  EXPECT_EQ(read_text_samples(path),
            (Strings{"first", "with\nnewline \u00e9", "", "last, no newline"}));
}

TEST(TextCorpus, TxtSamplesAreSeparatedByBlankLines) {
  const std::string path = write_file(
      dir(), "ok.txt",
      "\n\nfirst paragraph\nsecond line  \n\n\n  indented\tsecond\r\nparagraph\r\n \t \r\nthird");
  EXPECT_EQ(read_text_samples(path),
            (Strings{"first paragraph\nsecond line  ", "  indented\tsecond\nparagraph", "third"}));
}

TEST(TextCorpus, ByteOrderMarkIsSkipped) {
  EXPECT_EQ(read_text_samples(write_file(dir(), "bom.txt", "\xEF\xBB\xBFhello")),
            (Strings{"hello"}));
  EXPECT_EQ(read_text_samples(write_file(dir(), "bom.jsonl", "\xEF\xBB\xBF{\"text\": \"hi\"}\n")),
            (Strings{"hi"}));
}

TEST(TextCorpus, MalformedJsonlLinesNameFileAndLine) {
  const std::string bad =
      write_file(dir(), "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
  expect_error([&] { read_text_samples(bad); }, {bad + ":2: not valid JSON"});
  const std::string array = write_file(dir(), "array.jsonl", "[\"text\"]\n");
  expect_error([&] { read_text_samples(array); },
               {array + ":1: expected a JSON object (got array)"});
  const std::string missing =
      write_file(dir(), "missing.jsonl", "{\"text\": \"a\"}\n\n{\"txt\": \"b\"}\n");
  expect_error([&] { read_text_samples(missing); }, {missing + ":3: missing field \"text\""});
  const std::string number = write_file(dir(), "number.jsonl", "{\"text\": 42}\n");
  expect_error([&] { read_text_samples(number); },
               {number + ":1: field \"text\" is not a string (got number)"});
}

TEST(TextCorpus, EmptyCorpusIsRefused) {
  for (const char* name : {"empty.jsonl", "blank.jsonl", "empty.txt", "blank.txt"}) {
    const std::string path = write_file(dir(), name, name[0] == 'b' ? "\n  \n\t\r\n" : "");
    expect_error([&] { read_text_samples(path); }, {path + ": no text samples"});
  }
}

TEST(TextCorpus, InvalidUtf8NamesLineAndByteOffset) {
  const std::string path = write_file(dir(), "latin1.txt", "caf\xC3\xA9\nna\xEFve\n");
  expect_error([&] { read_text_samples(path); },
               {path + ":2: invalid UTF-8 at byte offset 8 (byte 0xEF)"});
  const std::string with_bom =
      write_file(dir(), "bom_bad.jsonl", "\xEF\xBB\xBF{\"text\": \"\xFF\"}\n");
  expect_error([&] { read_text_samples(with_bom); },
               {with_bom + ":1: invalid UTF-8 at byte offset 13"});
}

TEST(TextCorpus, OtherExtensionsAndMissingFiles) {
  expect_error([&] { read_text_samples(dir() + "/data.csv"); },
               {"data.csv: unsupported calibration text file"});
  expect_error([&] { read_text_samples(dir() + "/nothing.txt"); }, {"nothing.txt: cannot open"});
}

}  // namespace
}  // namespace moequant::tokenizer::test
