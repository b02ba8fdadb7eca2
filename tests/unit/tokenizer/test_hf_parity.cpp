// The ids of every sample of tests/data/tokenizer/corpus.jsonl against the ids recorded in
// expected_<name>.json (made by make_expected.py with Hugging Face `tokenizers`, or provisionally
// by make_expected_js.mjs with its JavaScript port), for the tokenizer.json files that
// fetch_tokenizers.sh puts in MOEQUANT_TOKENIZER_FILES (a ctest fixture).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "moequant/tokenizer/text_corpus.h"
#include "moequant/tokenizer/tokenizer.h"

namespace moequant::tokenizer {
namespace {

using json = nlohmann::json;

const std::string kData = std::string(MOEQUANT_TEST_DATA) + "/tokenizer";

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  return json::parse(in);
}

// The corpus lines by line number (blank lines skipped).
std::map<int, json> corpus_by_line() {
  std::ifstream in(kData + "/corpus.jsonl");
  std::map<int, json> lines;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number)
    if (!line.empty()) lines[number] = json::parse(line);
  return lines;
}

std::string ids_string(const std::vector<int32_t>& ids, size_t from, size_t count) {
  std::ostringstream os;
  for (size_t i = from; i < ids.size() && i < from + count; ++i)
    os << (i > from ? " " : "") << ids[i];
  return os.str();
}

void check_parity(const std::string& name) {
  const std::string path = std::string(MOEQUANT_TOKENIZER_FILES) + "/" + name + "/tokenizer.json";
  ASSERT_TRUE(std::ifstream(path).good())
      << path << " is missing: run `ctest -R tokenizer` (its fixture fetches it) or "
      << "tests/unit/tokenizer/fetch_tokenizers.sh " << MOEQUANT_TOKENIZER_FILES;
  const Tokenizer tok = Tokenizer::from_file(path);
  const json expected = read_json(kData + "/expected_" + name + ".json");
  const std::map<int, json> corpus = corpus_by_line();
  const bool js_port = expected.at("reference") == "js-port";
  SCOPED_TRACE("expected_" + name + ".json from " + expected.at("generator").get<std::string>());

  // Every corpus sample is checked, except those the JavaScript port is known to get wrong.
  std::map<int, bool> covered;
  for (const auto& [line, sample] : corpus) covered[line] = false;
  for (const json& line : expected.at("skipped_lines")) {
    const int n = line.get<int>();
    ASSERT_TRUE(js_port && corpus.at(n).contains("js_port_differs"))
        << "corpus line " << n << " is left out of the expected ids without a reason";
    covered[n] = true;
  }
  size_t checked = 0;
  for (const json& s : expected.at("samples")) {
    const int line = s.at("line").get<int>();
    const std::string text = s.at("text").get<std::string>();
    ASSERT_TRUE(corpus.count(line) && corpus.at(line).at("text") == text)
        << "corpus.jsonl line " << line << " is not the text the expected ids were made from; "
        << "regenerate expected_" << name << ".json (README.md)";
    covered[line] = true;
    const auto want = s.at("ids").get<std::vector<int32_t>>();
    const auto got = tok.encode(text);
    if (got != want) {
      size_t first = 0;
      while (first < got.size() && first < want.size() && got[first] == want[first]) ++first;
      const size_t from = first > 3 ? first - 3 : 0;
      ADD_FAILURE() << name << ": corpus line " << line << " " << s.at("text").dump().substr(0, 120)
                    << "\n  first difference at id " << first << " of " << want.size()
                    << "\n  expected ..." << ids_string(want, from, 10) << "\n  got      ..."
                    << ids_string(got, from, 10);
    }
    ++checked;
  }
  for (const auto& [line, done] : covered)
    EXPECT_TRUE(done) << "corpus line " << line << " has no expected ids in expected_" << name;
  EXPECT_GE(checked, 80u);
}

TEST(HfParity, Qwen3ByteLevelBpe) {
  check_parity("qwen3");
}

TEST(HfParity, Llama2SentencePieceBpe) {
  check_parity("llama2");
}

// encode() from several threads at once (they share the word cache) gives the serial ids.
TEST(HfParity, ConcurrentEncodesAgree) {
  const Tokenizer tok =
      Tokenizer::from_file(std::string(MOEQUANT_TOKENIZER_FILES) + "/qwen3/tokenizer.json");
  std::vector<std::string> texts;
  for (const auto& [line, sample] : corpus_by_line()) texts.push_back(sample.at("text"));
  std::vector<std::vector<int32_t>> serial;
  for (const auto& t : texts) serial.push_back(Tokenizer(tok).encode(t));
  const Tokenizer fresh =
      Tokenizer::from_file(std::string(MOEQUANT_TOKENIZER_FILES) + "/qwen3/tokenizer.json");
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round)
        for (size_t i = 0; i < texts.size(); ++i)
          mismatches[t] +=
              fresh.encode(texts[(i + t * 7) % texts.size()]) != serial[(i + t * 7) % texts.size()];
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

// The corpus file itself is read by read_text_samples as the calibration command would read it.
TEST(HfParity, CorpusReadsAsCalibrationText) {
  const auto samples = read_text_samples(kData + "/corpus.jsonl");
  const auto corpus = corpus_by_line();
  ASSERT_EQ(samples.size(), corpus.size());
  size_t i = 0;
  for (const auto& [line, sample] : corpus) EXPECT_EQ(samples[i++], sample.at("text")) << line;
}

}  // namespace
}  // namespace moequant::tokenizer
