// Sharded Hugging Face folders: the index writer, CheckpointFolder, and broken indexes.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "io_test_util.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/io/safetensors.h"

namespace moequant::io {
namespace {

using testing::error_of;
using testing::TempDir;

// Writes one shard whose tensors are U8 [4] filled with the first letter of their name.
uint64_t write_shard(const std::string& path, const std::vector<std::string>& names) {
  std::vector<TensorSpec> specs;
  for (const auto& n : names) specs.push_back({n, DType::kU8, {4}});
  SafetensorsWriter writer(path, specs, {{"format", "pt"}});
  for (const auto& n : names) writer.write(n, std::string(4, n[0]).data(), 4);
  writer.finish();
  return writer.data_size();
}

// A three-shard folder; returns its weight map.
std::map<std::string, std::string> make_sharded(const TempDir& dir) {
  const std::map<std::string, std::vector<std::string>> shards = {
      {"model-00001-of-00003.safetensors", {"b.weight", "a.weight"}},
      {"model-00002-of-00003.safetensors", {"c.weight"}},
      {"model-00003-of-00003.safetensors", {"e.weight", "d.weight", "f.weight"}}};
  std::map<std::string, std::string> weight_map;
  uint64_t total = 0;
  for (const auto& [file, names] : shards) {
    total += write_shard(dir.file(file), names);
    for (const auto& n : names) weight_map[n] = file;
  }
  write_index(dir.file(kIndexFileName), total, weight_map);
  return weight_map;
}

TEST(CheckpointFolder, ReadsAShardedFolder) {
  TempDir dir;
  const auto weight_map = make_sharded(dir);
  const CheckpointFolder folder = CheckpointFolder::open(dir.path());
  EXPECT_TRUE(folder.sharded());
  EXPECT_EQ(folder.names(), (std::vector<std::string>{"a.weight", "b.weight", "c.weight",
                                                      "d.weight", "e.weight", "f.weight"}));
  EXPECT_EQ(folder.files().size(), 3u);
  for (const auto& [name, file] : weight_map) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(folder.has(name));
    EXPECT_EQ(folder.file_of(name), file);
    const TensorInfo& t = folder.info(name);
    EXPECT_EQ(t.name, name);
    EXPECT_EQ(t.shape, std::vector<int64_t>{4});
    EXPECT_EQ(std::memcmp(folder.data(name), std::string(4, name[0]).data(), 4), 0);
  }
  EXPECT_FALSE(folder.has("z.weight"));
  folder.validate_all();
}

TEST(CheckpointFolder, ConcurrentFirstAccessOpensEachShardOnce) {
  TempDir dir;
  const auto weight_map = make_sharded(dir);
  const CheckpointFolder folder = CheckpointFolder::open(dir.path());
  std::vector<std::thread> threads;
  std::vector<const uint8_t*> seen(8);
  for (size_t i = 0; i < seen.size(); ++i)
    threads.emplace_back([&, i] { seen[i] = folder.data("e.weight"); });
  for (auto& t : threads) t.join();
  for (const uint8_t* p : seen) EXPECT_EQ(p, seen[0]);
}

TEST(CheckpointFolder, WriteIndexIsDeterministicJson) {
  TempDir dir;
  write_index(dir.file("index.json"), 123,
              {{"z.weight", "model-00002-of-00003.safetensors"},
               {"a.weight", "model-00001-of-00002.safetensors"}});
  EXPECT_EQ(testing::read_bytes(dir.file("index.json")),
            "{\n"
            "  \"metadata\": {\n"
            "    \"total_size\": 123\n"
            "  },\n"
            "  \"weight_map\": {\n"
            "    \"a.weight\": \"model-00001-of-00002.safetensors\",\n"
            "    \"z.weight\": \"model-00002-of-00003.safetensors\"\n"
            "  }\n"
            "}\n");
  EXPECT_CONTAINS(error_of([&] {
                    write_index(dir.file("bad.json"), 0, {{"a", "../x"}});
                  }),
                  "tensor 'a' maps to '../x', which is not a file name inside the folder");
}

TEST(CheckpointFolder, SingleFileWinsOverAnIndex) {
  TempDir dir;
  make_sharded(dir);
  write_shard(dir.file(kSingleFileName), {"only.weight"});
  const CheckpointFolder folder = CheckpointFolder::open(dir.path());
  EXPECT_FALSE(folder.sharded());
  EXPECT_EQ(folder.names(), std::vector<std::string>{"only.weight"});
}

TEST(CheckpointFolder, StaleIndexBesideTheSingleFileIsRefusedNamingTheMissingShard) {
  TempDir dir;
  make_sharded(dir);
  write_shard(dir.file(kSingleFileName), {"only.weight"});
  std::remove(dir.file("model-00002-of-00003.safetensors").c_str());
  EXPECT_CONTAINS(error_of([&] { CheckpointFolder::open(dir.path()); }),
                  "model-00002-of-00003.safetensors");
}

TEST(CheckpointFolder, MissingTensor) {
  TempDir dir;
  make_sharded(dir);
  const CheckpointFolder folder = CheckpointFolder::open(dir.path());
  EXPECT_CONTAINS(error_of([&] { folder.info("nope.weight"); }),
                  "no tensor 'nope.weight' in this checkpoint");
  EXPECT_CONTAINS(error_of([&] { folder.data("nope.weight"); }), "no tensor 'nope.weight'");
  EXPECT_CONTAINS(error_of([&] { folder.file_of("nope.weight"); }), "no tensor 'nope.weight'");
}

TEST(CheckpointFolder, NotACheckpoint) {
  TempDir dir;
  EXPECT_CONTAINS(error_of([&] { CheckpointFolder::open(dir.path()); }),
                  "no model.safetensors and no model.safetensors.index.json");
}

// ---- broken indexes -------------------------------------------------------------------------

// Folder with shard files 1 and 2 and an index of the given text.
std::string open_error_with_index(const TempDir& dir, const std::string& index_text) {
  write_shard(dir.file("s1.safetensors"), {"a.weight", "b.weight"});
  write_shard(dir.file("s2.safetensors"), {"c.weight"});
  testing::write_bytes(dir.file(kIndexFileName), index_text);
  return error_of([&] { CheckpointFolder::open(dir.path()).validate_all(); });
}

TEST(CheckpointFolderHostile, IndexPointsAtAMissingFile) {
  TempDir dir;
  write_shard(dir.file("s1.safetensors"), {"a.weight", "b.weight"});
  write_index(dir.file(kIndexFileName), 8,
              {{"a.weight", "s1.safetensors"},
               {"b.weight", "s1.safetensors"},
               {"c.weight", "s9.safetensors"}});
  EXPECT_CONTAINS(error_of([&] { CheckpointFolder::open(dir.path()); }),
                  "weight_map: tensor 'c.weight' maps to 's9.safetensors', which does not exist");
}

TEST(CheckpointFolderHostile, IndexNamesATensorTheShardDoesNotHold) {
  TempDir dir;
  write_shard(dir.file("s1.safetensors"), {"a.weight", "b.weight"});
  write_index(dir.file(kIndexFileName), 8,
              {{"a.weight", "s1.safetensors"},
               {"b.weight", "s1.safetensors"},
               {"ghost.weight", "s1.safetensors"}});
  const CheckpointFolder folder = CheckpointFolder::open(dir.path());  // no shard opened yet
  EXPECT_TRUE(folder.has("ghost.weight"));
  const std::string expected =
      "weight_map: tensor 'ghost.weight' maps to 's1.safetensors', which does not hold it";
  EXPECT_CONTAINS(error_of([&] { folder.info("a.weight"); }), expected);
  EXPECT_CONTAINS(error_of([&] { folder.validate_all(); }), expected);
}

TEST(CheckpointFolderHostile, ShardHoldsATensorTheIndexDoesNotList) {
  TempDir dir;
  const std::string error = open_error_with_index(
      dir, R"({"weight_map": {"a.weight": "s1.safetensors", "c.weight": "s2.safetensors"}})");
  EXPECT_CONTAINS(error, "s1.safetensors: holds tensor 'b.weight', which");
  EXPECT_CONTAINS(error, "does not list");
}

TEST(CheckpointFolderHostile, ShardHoldsATensorMappedElsewhere) {
  TempDir dir;
  const std::string error = open_error_with_index(
      dir, R"({"weight_map": {"a.weight": "s1.safetensors", "b.weight": "s2.safetensors",
                              "c.weight": "s2.safetensors"}})");
  EXPECT_CONTAINS(error, "holds tensor 'b.weight', which");
  EXPECT_CONTAINS(error, "maps to 's2.safetensors'");
}

TEST(CheckpointFolderHostile, MalformedIndexes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"weight_map": {"a.weight": "s1.safetensors",)", "not valid JSON"},
      {R"(["s1.safetensors"])", "must be a JSON object, got array"},
      {R"({"metadata": {}})", "missing \"weight_map\""},
      {R"({"weight_map": []})", "\"weight_map\" must be an object, got array"},
      {R"({"weight_map": {}})", "\"weight_map\" lists no tensors"},
      {R"({"weight_map": {"a.weight": 3}})",
       "tensor 'a.weight' must map to a file name, got number"},
      {R"({"weight_map": {"a.weight": "../s1.safetensors"}})",
       "maps to '../s1.safetensors', which is not a file name inside the folder"},
      {R"({"weight_map": {"a.weight": "s1.safetensors", "a.weight": "s2.safetensors"}})",
       "key 'a.weight' appears twice"},
      {R"({"metadata": {"total_size": -5}, "weight_map": {"a.weight": "s1.safetensors"}})",
       "\"metadata.total_size\" must be a non-negative integer, got -5"},
      {R"({"metadata": 7, "weight_map": {"a.weight": "s1.safetensors"}})",
       "\"metadata\" must be an object, got number"},
  };
  for (const auto& [text, expected] : cases) {
    TempDir dir;
    const std::string error = open_error_with_index(dir, text);
    EXPECT_CONTAINS(error, expected);
    EXPECT_CONTAINS(error, kIndexFileName);
  }
}

TEST(CheckpointFolderHostile, BrokenShardNamesTheShard) {
  TempDir dir;
  write_shard(dir.file("s1.safetensors"), {"a.weight"});
  testing::write_bytes(dir.file("s2.safetensors"), "garbage");
  write_index(dir.file(kIndexFileName), 8,
              {{"a.weight", "s1.safetensors"}, {"b.weight", "s2.safetensors"}});
  const CheckpointFolder folder = CheckpointFolder::open(dir.path());
  EXPECT_NE(folder.data("a.weight"), nullptr);  // the good shard stays readable
  EXPECT_CONTAINS(error_of([&] { folder.info("b.weight"); }),
                  "s2.safetensors: file is 7 bytes, too short");
}

// Whether the page holding `p` is mapped in this process (/proc/self/pagemap bit 63, readable
// without privileges).
bool page_present(const void* p) {
  const long page = ::sysconf(_SC_PAGESIZE);
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  uint64_t entry = 0;
  const off_t at = static_cast<off_t>(reinterpret_cast<uintptr_t>(p) / page * 8);
  const bool read = fd >= 0 && ::pread(fd, &entry, sizeof(entry), at) == sizeof(entry);
  if (fd >= 0) ::close(fd);
  return read && (entry >> 63) != 0;
}

// One expert's slice of a fused tensor (TensorSpan): its whole pages are dropped from the
// mapping, the edge pages shared with neighbours and everything outside stay; the bytes read the
// same afterwards; a span past the tensor's end is clamped.
TEST(CheckpointFolder, ReleasingASpanDropsItsWholePagesOnly) {
  TempDir dir;
  const long page = ::sysconf(_SC_PAGESIZE);
  const int64_t n = 64 * page;
  std::string bytes(static_cast<size_t>(n), '\0');
  for (int64_t i = 0; i < n; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>(i * 7 + 3);
  {
    SafetensorsWriter writer(dir.file("model.safetensors"), {{"experts", DType::kU8, {n}}}, {});
    writer.write("experts", bytes.data(), static_cast<uint64_t>(n));
    writer.finish();
  }
  const CheckpointFolder folder = CheckpointFolder::open(dir.path());
  const uint8_t* data = folder.data("experts");
  uint64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += data[i];  // every page mapped
  if (!page_present(data)) GTEST_SKIP() << "/proc/self/pagemap does not say which pages are mapped";
  const uint64_t offset = 10 * static_cast<uint64_t>(page) + 100, length = 20 * page;
  folder.release(TensorSpan{"experts", offset, length});
  // The pages of [offset, offset + length) that lie wholly inside it, relative to the tensor's
  // first byte (the data section need not start on a page boundary).
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data) + offset, end = begin + length;
  int dropped = 0, kept_inside_edges = 0;
  for (uintptr_t a = reinterpret_cast<uintptr_t>(data) / page * page;
       a < reinterpret_cast<uintptr_t>(data) + n; a += page) {
    const bool whole = a >= begin && a + page <= end;
    const bool present = page_present(reinterpret_cast<const void*>(a));
    if (whole) {
      EXPECT_FALSE(present) << "page at +" << a - reinterpret_cast<uintptr_t>(data);
      dropped += !present;
    } else {
      EXPECT_TRUE(present) << "page at +" << a - reinterpret_cast<uintptr_t>(data);
      kept_inside_edges += present && a < end && a + page > begin;
    }
  }
  EXPECT_EQ(19, dropped);           // 20 pages long, starting mid-page
  EXPECT_EQ(2, kept_inside_edges);  // the two shared edge pages
  EXPECT_EQ(0, std::memcmp(data, bytes.data(), static_cast<size_t>(n)));           // read again
  folder.release(TensorSpan{"experts", static_cast<uint64_t>(n) - 10, 1u << 30});  // clamped
  folder.prefetch(TensorSpan{"experts", static_cast<uint64_t>(n) + 5, 10});        // empty
  EXPECT_EQ(0, std::memcmp(data, bytes.data(), static_cast<size_t>(n)));
  EXPECT_GT(sum, 0u);
}

}  // namespace
}  // namespace moequant::io
