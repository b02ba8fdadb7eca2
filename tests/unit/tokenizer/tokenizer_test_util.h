// Helpers of the tokenizer tests: small tokenizer.json documents built in code, files in a
// temporary folder, and checks on error messages.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "moequant/common/error.h"
#include "moequant/tokenizer/tokenizer.h"

namespace moequant::tokenizer::test {

using json = nlohmann::json;

// A BPE model over `tokens` (ids in order) with merges given as "a b" strings.
inline json bpe_model(const std::vector<std::string>& tokens,
                      const std::vector<std::string>& merges = {}) {
  json vocab = json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  return {{"type", "BPE"},     {"dropout", nullptr},     {"unk_token", nullptr},
          {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
          {"merges", merges}};
}

// A whole tokenizer.json around `model`, with no other component.
inline json tokenizer_doc(json model) {
  return {{"version", "1.0"},          {"truncation", nullptr},
          {"padding", nullptr},        {"added_tokens", json::array()},
          {"normalizer", nullptr},     {"pre_tokenizer", nullptr},
          {"post_processor", nullptr}, {"decoder", nullptr},
          {"model", std::move(model)}};
}

// An entry of "added_tokens".
inline json added_token(int id, const std::string& content, bool special = true,
                        bool normalized = false) {
  return {{"id", id},        {"content", content},       {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", normalized}, {"special", special}};
}

inline Tokenizer load(const json& doc, const std::string& name = "test/tokenizer.json") {
  return Tokenizer::from_json(doc.dump(), name);
}

// A fresh folder under the test's temporary directory.
inline std::string temp_dir(const std::string& name) {
  const char* base = std::getenv("TMPDIR");
  std::string dir = std::string(base && *base ? base : "/tmp") + "/moequant_tokenizer_test_" +
                    name + "_" + std::to_string(::getpid());
  std::string cmd = "mkdir -p '" + dir + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return dir;
}

inline std::string write_file(const std::string& dir, const std::string& name,
                              const std::string& content) {
  const std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary);
  out << content;
  EXPECT_TRUE(out.good()) << path;
  return path;
}

// Runs `fn`, expecting a moequant::Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing '" << parts.front() << "'";
  } catch (const moequant::Error& e) {
    const std::string what = e.what();
    for (const auto& part : parts) {
      EXPECT_NE(what.find(part), std::string::npos) << "'" << part << "' not in: " << what;
    }
  }
}

}  // namespace moequant::tokenizer::test
