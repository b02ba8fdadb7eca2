// safetensors round trips (every dtype, scalars, empty tensors, metadata), the writer's contract,
// and reading the real Hugging Face fixtures.
#include <algorithm>
#include <cstring>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/io/safetensors.h"

namespace moequant::io {
namespace {

using testing::error_of;
using testing::TempDir;

// Deterministic, tensor-specific bytes.
std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + 31 * i + (i >> 8));
  return v;
}

// The `expected.size()` bytes at `p` equal `expected` (fine for empty tensors, unlike memcmp).
bool same_bytes(const uint8_t* p, const std::vector<uint8_t>& expected) {
  return std::equal(expected.begin(), expected.end(), p);
}

std::vector<TensorSpec> every_dtype_specs() {
  return {
      {"bf16.weight", DType::kBF16, {3, 5}},  {"f16.weight", DType::kF16, {7}},
      {"f32.weight", DType::kF32, {2, 3, 4}}, {"fp8.weight", DType::kF8E4M3, {4, 16}},
      {"u8.packed", DType::kU8, {5, 3}},      {"i8.values", DType::kI8, {9}},
      {"i32.values", DType::kI32, {2, 2}},    {"i64.values", DType::kI64, {3}},
      {"f64.values", DType::kF64, {1, 1}},    {"bool.mask", DType::kBool, {6}},
      {"scale.scalar", DType::kF32, {}},  // 0-d: one element
      {"empty.rows", DType::kBF16, {0, 64}},  {"empty.flat", DType::kF32, {0}},
      {"fp8.scalar", DType::kF8E4M3, {}},
  };
}

uint64_t nbytes_of(const TensorSpec& s) {
  return tensor_nbytes(s.dtype, s.shape, s.name);
}

void write_file(const std::string& path, const std::vector<TensorSpec>& specs,
                const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter writer(path, specs, metadata);
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto bytes = pattern(nbytes_of(specs[i]), static_cast<uint8_t>(i));
    writer.write(specs[i].name, bytes.data(), bytes.size());
  }
  writer.finish();
}

TEST(SafetensorsRoundTrip, EveryDtypeScalarsEmptyAndMetadata) {
  TempDir dir;
  const auto specs = every_dtype_specs();
  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"producer", "moequant \"test\""}};
  const std::string path = dir.file("all.safetensors");
  write_file(path, specs, metadata);

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.metadata(), metadata);
  ASSERT_EQ(file.tensors().size(), specs.size());
  uint64_t offset = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorInfo& t = file.tensors()[i];  // data order == write order
    SCOPED_TRACE(specs[i].name);
    EXPECT_EQ(t.name, specs[i].name);
    EXPECT_EQ(t.dtype, specs[i].dtype);
    EXPECT_EQ(t.shape, specs[i].shape);
    EXPECT_EQ(t.begin, offset);
    EXPECT_EQ(t.nbytes(), nbytes_of(specs[i]));
    EXPECT_EQ(t.end - t.begin, t.nbytes());
    offset = t.end;
    EXPECT_EQ(file.find(t.name), &t);
    const auto expected = pattern(t.nbytes(), static_cast<uint8_t>(i));
    EXPECT_TRUE(same_bytes(file.data(t), expected));
  }
  EXPECT_EQ(file.find("scale.scalar")->numel(), 1);
  EXPECT_EQ(file.find("scale.scalar")->nbytes(), 4u);
  EXPECT_EQ(file.find("empty.rows")->numel(), 0);
  EXPECT_EQ(file.find("empty.rows")->nbytes(), 0u);
  EXPECT_EQ(file.find("missing"), nullptr);
}

TEST(SafetensorsRoundTrip, HeaderIsPaddedAndDeterministic) {
  TempDir dir;
  const auto specs = every_dtype_specs();
  write_file(dir.file("a.safetensors"), specs, {{"format", "pt"}});
  write_file(dir.file("b.safetensors"), specs, {{"format", "pt"}});
  const std::string a = testing::read_bytes(dir.file("a.safetensors"));
  EXPECT_EQ(a, testing::read_bytes(dir.file("b.safetensors")));

  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<uint8_t>(a[i]);
  EXPECT_EQ(header_size % 8, 0u);  // the data section starts 8-byte aligned
  const std::string header = a.substr(8, header_size);
  EXPECT_EQ(header, serialize_header(specs, {{"format", "pt"}}));
  EXPECT_EQ(header.rfind("{\"__metadata__\":{\"format\":\"pt\"},\"bf16.weight\":", 0), 0u);
}

TEST(SafetensorsRoundTrip, SerializedHeaderText) {
  const std::string h = serialize_header(
      {{"w", DType::kBF16, {2, 3}}, {"s", DType::kF32, {}}, {"e", DType::kU8, {0}}}, {});
  const std::string body =
      "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
      "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]},"
      "\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[16,16]}}";
  EXPECT_EQ(h, body + std::string((8 - body.size() % 8) % 8, ' '));  // spaces up to a multiple of 8
  EXPECT_EQ(h.size() % 8, 0u);
  // What we write, we read back, with the same layout.
  const Header parsed = parse_header(testing::bytes_of(h), h.size(), "mem", 16);
  ASSERT_EQ(parsed.tensors.size(), 3u);
  EXPECT_EQ(parsed.tensors[2].name, "e");
  EXPECT_EQ(parsed.tensors[2].begin, 16u);
}

TEST(SafetensorsRoundTrip, NoTensorsAtAll) {
  TempDir dir;
  write_file(dir.file("none.safetensors"), {}, {});
  const SafetensorsFile file = SafetensorsFile::open(dir.file("none.safetensors"));
  EXPECT_TRUE(file.tensors().empty());
  EXPECT_TRUE(file.metadata().empty());
}

TEST(SafetensorsRoundTrip, LargeTensorsBypassTheBufferInOrder) {
  TempDir dir;
  const std::vector<TensorSpec> specs = {{"small.0", DType::kF32, {3}},
                                         {"big", DType::kU8, {3 << 20}},
                                         {"small.1", DType::kF32, {}},
                                         {"medium", DType::kU8, {(1 << 20) - 3}},
                                         {"small.2", DType::kBF16, {5}}};
  write_file(dir.file("mixed.safetensors"), specs, {});
  const SafetensorsFile file = SafetensorsFile::open(dir.file("mixed.safetensors"));
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorInfo* t = file.find(specs[i].name);
    ASSERT_NE(t, nullptr);
    const auto expected = pattern(t->nbytes(), static_cast<uint8_t>(i));
    EXPECT_TRUE(same_bytes(file.data(*t), expected)) << t->name;
  }
}

TEST(SafetensorsRoundTrip, MovedFileKeepsItsMapping) {
  TempDir dir;
  write_file(dir.file("m.safetensors"), every_dtype_specs(), {});
  SafetensorsFile a = SafetensorsFile::open(dir.file("m.safetensors"));
  SafetensorsFile b = std::move(a);
  const TensorInfo* t = b.find("f32.weight");
  ASSERT_NE(t, nullptr);
  const auto expected = pattern(t->nbytes(), 2);
  EXPECT_TRUE(same_bytes(b.data(*t), expected));
}

TEST(SafetensorsFile, RefusesTensorInfoOfAnotherFile) {
  TempDir dir;
  write_file(dir.file("m.safetensors"), every_dtype_specs(), {});
  const SafetensorsFile file = SafetensorsFile::open(dir.file("m.safetensors"));
  const TensorInfo copy = *file.find("f32.weight");
  EXPECT_CONTAINS(error_of([&] { file.data(copy); }),
                  "tensor 'f32.weight' does not come from this file");
}

TEST(SafetensorsFile, MissingFileAndDirectory) {
  TempDir dir;
  EXPECT_CONTAINS(error_of([&] { SafetensorsFile::open(dir.file("nope.safetensors")); }),
                  "nope.safetensors: cannot open: No such file or directory");
  EXPECT_CONTAINS(error_of([&] { SafetensorsFile::open(dir.path()); }), "not a regular file");
}

// ---- the writer's contract ------------------------------------------------------------------

TEST(SafetensorsWriter, RejectsOutOfOrderWrongSizeAndEarlyFinish) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  SafetensorsWriter writer(path, {{"a", DType::kF32, {2}}, {"b", DType::kBF16, {3}}});
  const float a[2] = {1.0f, 2.0f};
  EXPECT_CONTAINS(error_of([&] { writer.write("b", a, 6); }),
                  "w.safetensors: expected tensor 'a' next (1 of 2), got 'b'");
  EXPECT_CONTAINS(error_of([&] { writer.write("a", a, 7); }),
                  "tensor 'a': got 7 bytes, but F32 [2] needs 8");
  writer.write("a", a, sizeof(a));  // a rejected call leaves the writer usable
  EXPECT_CONTAINS(error_of([&] { writer.finish(); }),
                  "finish() after 1 of 2 tensors; tensor 'b' was never written");
  const uint16_t b[3] = {1, 2, 3};
  writer.write("b", b, sizeof(b));
  EXPECT_CONTAINS(error_of([&] { writer.write("c", b, 2); }),
                  "all 2 tensors already written, got another: 'c'");
  writer.finish();
  EXPECT_EQ(writer.data_size(), 14u);
  EXPECT_EQ(writer.file_size(), testing::read_bytes(path).size());
  EXPECT_CONTAINS(error_of([&] { writer.finish(); }), "writer already finished");
}

TEST(SafetensorsWriter, UnfinishedWriterRemovesItsFile) {
  TempDir dir;
  const std::string path = dir.file("partial.safetensors");
  {
    SafetensorsWriter writer(path, {{"a", DType::kU8, {4}}, {"b", DType::kU8, {4}}});
    writer.write("a", "abcd", 4);
    EXPECT_TRUE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(SafetensorsWriter, MovedWriterKeepsWriting) {
  TempDir dir;
  const std::string path = dir.file("moved.safetensors");
  SafetensorsWriter first(path, {{"a", DType::kU8, {4}}});
  SafetensorsWriter second = std::move(first);
  second.write("a", "abcd", 4);
  second.finish();
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(std::memcmp(file.data(file.tensors()[0]), "abcd", 4), 0);
}

TEST(SafetensorsWriter, RejectsBadSpecsBeforeCreatingTheFile) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  EXPECT_CONTAINS(error_of([&] {
                    SafetensorsWriter w(path, {{"a", DType::kU8, {1}}, {"a", DType::kU8, {1}}});
                  }),
                  "bad.safetensors: tensor 'a' is listed twice");
  EXPECT_CONTAINS(error_of([&] {
                    SafetensorsWriter w(path, {{"neg", DType::kF32, {4, -2}}});
                  }),
                  "tensor 'neg': shape [4, -2] has a negative dimension");
  EXPECT_CONTAINS(error_of([&] {
                    SafetensorsWriter w(path, {{"__metadata__", DType::kU8, {1}}});
                  }),
                  "'__metadata__' cannot name a tensor");
  EXPECT_CONTAINS(error_of([&] {
                    SafetensorsWriter w(path, {{"bad\xff", DType::kU8, {1}}});
                  }),
                  "is not valid UTF-8");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_CONTAINS(error_of([&] { SafetensorsWriter w(dir.file("no/such/dir.safetensors"), {}); }),
                  "cannot create: No such file or directory");
}

// ---- the real Hugging Face fixtures ---------------------------------------------------------

const char* const kFixtures = MOEQUANT_TEST_DATA "/hf";

nlohmann::json read_config(const std::string& model) {
  std::ifstream in(std::string(kFixtures) + "/" + model + "/config.json");
  return nlohmann::json::parse(in);
}

void expect_tensor(const SafetensorsFile& file, const std::string& name,
                   const std::vector<int64_t>& shape) {
  const TensorInfo* t = file.find(name);
  ASSERT_NE(t, nullptr) << name;
  EXPECT_EQ(t->dtype, DType::kBF16) << name;
  EXPECT_EQ(t->shape, shape) << name;
}

TEST(SafetensorsFixtures, Qwen3Moe) {
  const auto cfg = read_config("qwen3moe");
  const int64_t hidden = cfg["hidden_size"], inter = cfg["moe_intermediate_size"];
  const int64_t experts = cfg["num_local_experts"], layers = cfg["num_hidden_layers"];
  const int64_t vocab = cfg["vocab_size"], head_dim = cfg["head_dim"];
  const SafetensorsFile file =
      SafetensorsFile::open(std::string(kFixtures) + "/qwen3moe/model.safetensors");
  EXPECT_EQ(file.metadata().at("format"), "pt");
  // Per layer: 3 per expert, router, 2 norms, 4 projections, q/k norms; plus embed, norm, head.
  EXPECT_EQ(file.tensors().size(), static_cast<size_t>(layers * (3 * experts + 9) + 3));
  expect_tensor(file, "model.layers.0.mlp.experts.0.gate_proj.weight", {32, 64});
  for (int64_t l = 0; l < layers; ++l) {
    const std::string layer = "model.layers." + std::to_string(l);
    expect_tensor(file, layer + ".mlp.gate.weight", {experts, hidden});
    expect_tensor(file, layer + ".self_attn.q_norm.weight", {head_dim});
    for (int64_t e = 0; e < experts; ++e) {
      const std::string expert = layer + ".mlp.experts." + std::to_string(e);
      expect_tensor(file, expert + ".gate_proj.weight", {inter, hidden});
      expect_tensor(file, expert + ".up_proj.weight", {inter, hidden});
      expect_tensor(file, expert + ".down_proj.weight", {hidden, inter});
    }
  }
  expect_tensor(file, "model.embed_tokens.weight", {vocab, hidden});
  expect_tensor(file, "lm_head.weight", {vocab, hidden});

  // The final norm is initialized to ones: BF16 0x3f80 everywhere.
  const TensorInfo& norm = *file.find("model.norm.weight");
  const uint8_t* p = file.data(norm);
  for (int64_t i = 0; i < norm.numel(); ++i) {
    uint16_t v;
    std::memcpy(&v, p + 2 * i, 2);
    ASSERT_EQ(v, 0x3f80) << "element " << i;
  }
}

TEST(SafetensorsFixtures, Mixtral) {
  const auto cfg = read_config("mixtral");
  const int64_t hidden = cfg["hidden_size"], inter = cfg["intermediate_size"];
  const int64_t experts = cfg["num_local_experts"], layers = cfg["num_hidden_layers"];
  const SafetensorsFile file =
      SafetensorsFile::open(std::string(kFixtures) + "/mixtral/model.safetensors");
  EXPECT_EQ(file.tensors().size(), static_cast<size_t>(layers * (3 * experts + 7) + 3));
  for (int64_t l = 0; l < layers; ++l) {
    const std::string moe = "model.layers." + std::to_string(l) + ".block_sparse_moe";
    expect_tensor(file, moe + ".gate.weight", {experts, hidden});
    for (int64_t e = 0; e < experts; ++e) {
      const std::string expert = moe + ".experts." + std::to_string(e);
      expect_tensor(file, expert + ".w1.weight", {inter, hidden});
      expect_tensor(file, expert + ".w3.weight", {inter, hidden});
      expect_tensor(file, expert + ".w2.weight", {hidden, inter});
    }
  }
}

TEST(SafetensorsFixtures, OpensAsACheckpointFolder) {
  const CheckpointFolder folder = CheckpointFolder::open(std::string(kFixtures) + "/qwen3moe");
  EXPECT_FALSE(folder.sharded());
  EXPECT_EQ(folder.files(), std::vector<std::string>{"model.safetensors"});
  const auto names = folder.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(names.front(), "lm_head.weight");
  EXPECT_EQ(folder.file_of("model.norm.weight"), "model.safetensors");
  EXPECT_EQ(folder.info("model.layers.1.mlp.experts.7.down_proj.weight").shape,
            (std::vector<int64_t>{64, 32}));
  EXPECT_NE(folder.data("model.norm.weight"), nullptr);
}

}  // namespace
}  // namespace moequant::io
