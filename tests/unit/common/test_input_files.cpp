// The one reader of whole input files and the one depth-limited JSON parser (issue #25, items 10
// and 11): FIFOs and other non-regular files refused by name without blocking, size limits,
// nesting limits, duplicate keys.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "moequant/common/error.h"
#include "moequant/common/limited_json.h"
#include "moequant/common/regular_file.h"

namespace fs = std::filesystem;

namespace moequant {
namespace {

struct TempDir {
  TempDir() : path(fs::temp_directory_path() / ("mq-input-files-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name, const std::string& content) const {
    const std::string p = (path / name).string();
    std::ofstream(p) << content;
    return p;
  }
  fs::path path;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(RegularFile, ReadsWholeFiles) {
  TempDir t;
  const std::string p = t.file("a.json", "{\"x\": 1}\n");
  EXPECT_EQ(read_regular_file(p, 100), "{\"x\": 1}\n");
  EXPECT_EQ(file_kind(p), "a regular file");
  EXPECT_TRUE(path_exists(p));
}

TEST(RegularFile, RefusesFifosByNameWithoutBlocking) {
  TempDir t;
  const std::string fifo = (t.path / "config.json").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_EQ(error_of([&] { read_regular_file(fifo, 100); }),
            fifo + ": not a regular file (a FIFO)");
  EXPECT_EQ(file_kind(fifo), "a FIFO");
  EXPECT_EQ(error_of([&] { read_regular_file(t.path.string(), 100); }),
            t.path.string() + ": not a regular file (a folder)");
  EXPECT_EQ(error_of([&] { read_regular_file("/dev/zero", 100); }),
            "/dev/zero: not a regular file (a character device)");
}

TEST(RegularFile, RefusesFilesAboveTheLimitAndNamesMissingOnes) {
  TempDir t;
  const std::string p = t.file("big.json", std::string(101, 'x'));
  EXPECT_EQ(error_of([&] { read_regular_file(p, 100); }),
            p + ": 101 bytes, more than the limit of 100 bytes for this file");
  EXPECT_EQ(read_regular_file(p, 101).size(), 101u);
  const std::string missing = (t.path / "missing.json").string();
  EXPECT_EQ(error_of([&] { read_regular_file(missing, 100); }),
            missing + ": cannot open: No such file or directory");
  EXPECT_EQ(file_kind(missing), "missing");
  EXPECT_FALSE(path_exists(missing));
}

TEST(LimitedJson, ParsesWhatRealFilesHold) {
  const nlohmann::json j = parse_limited_json(R"({"a": [1, {"b": "[[[["}], "c": "\"]"})", "x");
  EXPECT_EQ(j["a"][1]["b"], "[[[[");  // brackets inside strings do not count
  EXPECT_EQ(j["c"], "\"]");
}

TEST(LimitedJson, RefusesNestingBeyondTheLimitBeforeParsing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(error_of([&] { parse_limited_json(deep, "config.json"); }),
            "config.json: JSON nested deeper than 64 levels (at byte 64)");
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_NO_THROW(parse_limited_json(ok, "config.json"));
  JsonLimits shallow;
  shallow.max_depth = 2;
  EXPECT_NE(error_of([&] {
              parse_limited_json("{\"a\": {\"b\": []}}", "f", shallow);
            }).find("nested deeper than 2 levels"),
            std::string::npos);
}

TEST(LimitedJson, NamesTheSourceOfMalformedTextAndDuplicateKeys) {
  EXPECT_NE(error_of([&] {
              parse_limited_json("{not json", "ids.jsonl:2");
            }).find("ids.jsonl:2: not valid JSON: "),
            std::string::npos);
  JsonLimits unique;
  unique.unique_keys = true;
  EXPECT_EQ(error_of([&] { parse_limited_json(R"({"a": {"k": 1, "k": 2}})", "idx", unique); }),
            "idx: key 'k' appears twice");
  EXPECT_NO_THROW(parse_limited_json(R"({"a": {"k": 1}, "b": {"k": 2}})", "idx", unique));
}

TEST(LimitedJson, ReadsFilesThroughTheOneReader) {
  TempDir t;
  const std::string fifo = (t.path / "tokenizer.json").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_EQ(error_of([&] { read_json_file(fifo, 100); }), fifo + ": not a regular file (a FIFO)");
  EXPECT_EQ(read_json_file(t.file("c.json", "{\"n\": 3}"), 100)["n"], 3);
}

}  // namespace
}  // namespace moequant
