// Hostile and broken safetensors files: each is rejected with its own message, never a crash.
#include <gtest/gtest.h>
#include <unistd.h>

#include "io_test_util.h"
#include "moequant/io/safetensors.h"

namespace moequant::io {
namespace {

using testing::error_of;
using testing::image;

// The error parse_file raises for an in-memory image named "model.safetensors".
std::string parse_error(const std::string& bytes) {
  return error_of([&] { parse_file(testing::bytes_of(bytes), bytes.size(), "model.safetensors"); });
}

// A header holding one F32 [2] tensor "a" at [0, 8), plus `extra` entries.
std::string header_with(const std::string& extra) {
  return R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})" + extra + "}";
}

TEST(SafetensorsHostile, ValidBaselineParses) {
  const FileLayout layout = parse_file(testing::bytes_of(image(header_with(""), 8)),
                                       image(header_with(""), 8).size(), "model.safetensors");
  ASSERT_EQ(layout.header.tensors.size(), 1u);
  EXPECT_EQ(layout.data_start, 8 + header_with("").size());
}

// ---- the length prefix ----------------------------------------------------------------------

TEST(SafetensorsHostile, FileShorterThanTheLengthPrefix) {
  EXPECT_CONTAINS(parse_error(std::string("\x01\x02\x03", 3)),
                  "model.safetensors: file is 3 bytes, too short for the 8-byte header length");
  EXPECT_CONTAINS(parse_error(""), "file is 0 bytes, too short");
}

TEST(SafetensorsHostile, HeaderLengthBeyondTheFile) {
  const std::string bytes = testing::length_prefix(1000) + std::string(42, ' ');
  EXPECT_CONTAINS(parse_error(bytes),
                  "header length 1000 runs past the end of the file (50 bytes; truncated?)");
}

TEST(SafetensorsHostile, HugeHeaderLengthIsRefusedBeforeAllocating) {
  EXPECT_CONTAINS(parse_error(testing::length_prefix(uint64_t{1} << 63) + "{}"),
                  "header length 9223372036854775808 exceeds the limit of 100000000 bytes");
  EXPECT_CONTAINS(parse_error(testing::length_prefix(~uint64_t{0})),
                  "header length 18446744073709551615 exceeds the limit");
}

TEST(SafetensorsHostile, TruncatedDataSection) {
  // The header promises 8 bytes of data; the file stops after 5.
  EXPECT_CONTAINS(parse_error(image(header_with(""), 5)),
                  "tensor 'a': data_offsets [0, 8) run past the end of the data section (5 bytes)");
}

// ---- the tiling of the data section ---------------------------------------------------------

TEST(SafetensorsHostile, OverlappingOffsets) {
  const std::string h = header_with(R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]})");
  EXPECT_CONTAINS(parse_error(image(h, 12)),
                  "tensor 'b': data_offsets [4, 12) overlap tensor 'a' [0, 8)");
}

TEST(SafetensorsHostile, EmptyTensorInsideAnother) {
  const std::string h = header_with(R"(,"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]})");
  EXPECT_CONTAINS(parse_error(image(h, 8)), "tensor 'e': data_offsets [4, 4) overlap tensor 'a'");
}

TEST(SafetensorsHostile, GapBetweenTensors) {
  const std::string h = header_with(R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]})");
  EXPECT_CONTAINS(parse_error(image(h, 16)),
                  "tensor 'b': data_offsets [12, 16) leave a gap: bytes [8, 12) after tensor 'a' "
                  "belong to no tensor");
}

TEST(SafetensorsHostile, GapAtTheStart) {
  const std::string h = R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})";
  EXPECT_CONTAINS(parse_error(image(h, 4)),
                  "tensor 'b': data_offsets [2, 4) leave a gap: bytes [0, 2) belong to no tensor");
}

TEST(SafetensorsHostile, TrailingBytesAfterTheLastTensor) {
  EXPECT_CONTAINS(parse_error(image(header_with(""), 11)),
                  "bytes [8, 11) at the end of the data section belong to no tensor");
  EXPECT_CONTAINS(parse_error(image("{}", 3)),
                  "bytes [0, 3) at the end of the data section belong to no tensor");
}

TEST(SafetensorsHostile, WrongByteCount) {
  const std::string h = R"({"x.weight":{"dtype":"BF16","shape":[3,4],"data_offsets":[0,10]}})";
  EXPECT_CONTAINS(parse_error(image(h, 10)),
                  "model.safetensors: tensor 'x.weight': data_offsets [0, 10) hold 10 bytes but "
                  "BF16 [3, 4] needs 24");
}

TEST(SafetensorsHostile, OffsetsBeyondTheFile) {
  const std::string h = R"({"a":{"dtype":"U8","shape":[100],"data_offsets":[0,100]}})";
  EXPECT_CONTAINS(parse_error(image(h, 8)),
                  "tensor 'a': data_offsets [0, 100) run past the end of the data section (8 "
                  "bytes)");
}

TEST(SafetensorsHostile, ReversedOffsets) {
  const std::string h = R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})";
  EXPECT_CONTAINS(parse_error(image(h, 8)),
                  "tensor 'a': data_offsets [8, 0) end before they begin");
}

// ---- names, JSON and field types ------------------------------------------------------------

TEST(SafetensorsHostile, DuplicateTensorNames) {
  // nlohmann's DOM would keep the second silently; the header must be refused instead.
  const std::string h = header_with(R"(,"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})");
  EXPECT_CONTAINS(parse_error(image(h, 8)), "model.safetensors: header names 'a' twice");
}

TEST(SafetensorsHostile, DuplicateFieldInAnEntry) {
  const std::string h = R"({"a":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1]}})";
  EXPECT_CONTAINS(parse_error(image(h, 1)), "tensor 'a': 'dtype' given twice");
}

TEST(SafetensorsHostile, BadJson) {
  EXPECT_CONTAINS(parse_error(image(R"({"a":{"dtype":"F32",)", 0)),
                  "model.safetensors: header is not valid JSON: [json.exception.parse_error");
  EXPECT_CONTAINS(parse_error(image("{} trailing", 0)), "header is not valid JSON");
  EXPECT_CONTAINS(parse_error(image("", 0)), "header is not valid JSON");
  EXPECT_CONTAINS(parse_error(image("{\"bad\xff\":{}}", 0)), "header is not valid JSON");
}

TEST(SafetensorsHostile, NonObjectJson) {
  EXPECT_CONTAINS(parse_error(image("[1, 2]", 0)), "header must be a JSON object, got an array");
  EXPECT_CONTAINS(parse_error(image("\"text\"", 0)), "header must be a JSON object, got a string");
  EXPECT_CONTAINS(parse_error(image("42", 0)), "header must be a JSON object, got a number");
  EXPECT_CONTAINS(parse_error(image("null", 0)), "header must be a JSON object, got null");
}

TEST(SafetensorsHostile, EntryNotAnObject) {
  EXPECT_CONTAINS(parse_error(image(R"({"a":[0,8]})", 8)),
                  "tensor 'a': entry must be an object, got an array");
}

TEST(SafetensorsHostile, NegativeShape) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,0]}})";
  EXPECT_CONTAINS(parse_error(image(h, 0)), "tensor 'a': shape has the negative dimension -1");
}

TEST(SafetensorsHostile, NonIntegerShape) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})";
  EXPECT_CONTAINS(parse_error(image(h, 8)),
                  "tensor 'a': 'shape' must be an array of non-negative integers, got the "
                  "non-integer number 2.5");
  const std::string nested = R"({"a":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})";
  EXPECT_CONTAINS(parse_error(image(nested, 8)),
                  "'shape' must be an array of non-negative "
                  "integers, got an array");
  const std::string scalar = R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})";
  EXPECT_CONTAINS(parse_error(image(scalar, 8)), "got a number");
}

TEST(SafetensorsHostile, ShapeOverflow) {
  const std::string h =
      R"({"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})";
  EXPECT_CONTAINS(parse_error(image(h, 0)),
                  "tensor 'a': shape [4294967296, 4294967296] has more elements than fit in 64 "
                  "bits");
  const std::string bytes = R"({"a":{"dtype":"F64","shape":[4611686018427387904],)"
                            R"("data_offsets":[0,0]}})";
  EXPECT_CONTAINS(parse_error(image(bytes, 0)), "needs more bytes than fit in 64 bits");
  const std::string huge = R"({"a":{"dtype":"U8","shape":[9223372036854775808],)"
                           R"("data_offsets":[0,0]}})";
  EXPECT_CONTAINS(parse_error(image(huge, 0)), "shape dimension 9223372036854775808 is too large");
}

TEST(SafetensorsHostile, UnknownDtype) {
  const std::string h = R"({"a":{"dtype":"F12","shape":[1],"data_offsets":[0,1]}})";
  EXPECT_CONTAINS(parse_error(image(h, 1)),
                  "model.safetensors: tensor 'a': unsupported dtype 'F12'");
  const std::string number = R"({"a":{"dtype":5,"shape":[1],"data_offsets":[0,1]}})";
  EXPECT_CONTAINS(parse_error(image(number, 1)),
                  "tensor 'a': 'dtype' must be a string, got a number");
}

TEST(SafetensorsHostile, MissingFields) {
  EXPECT_CONTAINS(parse_error(image(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", 1)),
                  "tensor 'a': missing 'shape'");
  EXPECT_CONTAINS(parse_error(image(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", 1)),
                  "tensor 'a': missing 'dtype'");
  EXPECT_CONTAINS(parse_error(image(R"({"a":{"dtype":"U8","shape":[1]}})", 1)),
                  "tensor 'a': missing 'data_offsets'");
}

TEST(SafetensorsHostile, MalformedDataOffsets) {
  const auto with_offsets = [](const std::string& offsets) {
    return image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":)" + offsets + "}}", 1);
  };
  EXPECT_CONTAINS(parse_error(with_offsets("[0,1,1]")),
                  "'data_offsets' must hold exactly 2 integers, got more");
  EXPECT_CONTAINS(parse_error(with_offsets("[1]")),
                  "'data_offsets' must hold exactly 2 integers, got 1");
  EXPECT_CONTAINS(parse_error(with_offsets("[-1,1]")),
                  "'data_offsets' must be an array of 2 non-negative integers, got the negative "
                  "number -1");
  EXPECT_CONTAINS(parse_error(with_offsets("\"0-1\"")), "got a string");
  EXPECT_CONTAINS(parse_error(with_offsets("[0,99999999999999999999]")),
                  "got the non-integer number 99999999999999999999");
}

TEST(SafetensorsHostile, BadMetadata) {
  EXPECT_CONTAINS(parse_error(image(R"({"__metadata__":{"format":1}})", 0)),
                  "__metadata__ key 'format' must map to a string, got a number");
  EXPECT_CONTAINS(parse_error(image(R"({"__metadata__":["pt"]})", 0)),
                  "__metadata__ must be an object of strings, got an array");
  EXPECT_CONTAINS(parse_error(image(R"({"__metadata__":{"k":"a","k":"b"}})", 0)),
                  "__metadata__ names key 'k' twice");
  EXPECT_CONTAINS(parse_error(image(R"({"__metadata__":{},"__metadata__":{}})", 0)),
                  "header names '__metadata__' twice");
}

TEST(SafetensorsHostile, UnknownEntryFieldsAreIgnoredEvenWhenDeep) {
  // As the reference implementation does; the skipped value costs a counter, not a tree.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string h = R"({"a":{"extra":)" + deep +
                        R"(,"dtype":"U8","shape":[1],"data_offsets":[0,1],"o":{"k":[1]}}})";
  const FileLayout layout = parse_file(testing::bytes_of(image(h, 1)), image(h, 1).size(), "deep");
  ASSERT_EQ(layout.header.tensors.size(), 1u);
  EXPECT_EQ(layout.header.tensors[0].dtype, DType::kU8);
}

TEST(SafetensorsHostile, DeepNestingWhereNoneBelongs) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_CONTAINS(parse_error(image(deep, 0)), "header must be a JSON object, got an array");
  EXPECT_CONTAINS(parse_error(image(R"({"__metadata__":{"k":)" + deep + "}}", 0)),
                  "__metadata__ key 'k' must map to a string, got an array");
}

// ---- the same checks through a real file ----------------------------------------------------

TEST(SafetensorsHostile, ThroughOpenOnDisk) {
  testing::TempDir dir;
  const auto open_error = [&](const std::string& name, const std::string& bytes) {
    testing::write_bytes(dir.file(name), bytes);
    return error_of([&] { SafetensorsFile::open(dir.file(name)); });
  };
  EXPECT_CONTAINS(open_error("empty.safetensors", ""),
                  "empty.safetensors: file is 0 bytes, too short");
  EXPECT_CONTAINS(open_error("short.safetensors", "abc"), "file is 3 bytes, too short");
  EXPECT_CONTAINS(open_error("huge.safetensors", testing::length_prefix(uint64_t{1} << 63)),
                  "exceeds the limit of 100000000 bytes");
  EXPECT_CONTAINS(open_error("cut.safetensors", testing::length_prefix(64) + "{}"),
                  "header length 64 runs past the end of the file (10 bytes; truncated?)");
  const std::string overlap =
      header_with(R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]})");
  EXPECT_CONTAINS(open_error("overlap.safetensors", image(overlap, 12)),
                  "overlap.safetensors: tensor 'b': data_offsets [4, 12) overlap tensor 'a'");
}

// A shard cut after it was mapped (another job rewriting the checkpoint): reading a vanished page
// would raise SIGBUS; the size is checked before every access instead, naming the file.
TEST(SafetensorsHostile, AFileThatShrinksAfterOpeningIsNamedNotABusError) {
  testing::TempDir t;
  const std::string path = t.file("model.safetensors");
  {
    SafetensorsWriter w(path, {{"a", DType::kF32, {1024}}, {"b", DType::kF32, {1024}}});
    std::vector<float> zeros(1024, 0.0f);
    w.write("a", zeros.data(), 4096);
    w.write("b", zeros.data(), 4096);
    w.finish();
  }
  const SafetensorsFile f = SafetensorsFile::open(path);
  ASSERT_EQ(::truncate(path.c_str(), 4096), 0);
  EXPECT_EQ(error_of([&] {
              f.data(*f.find("b"));
            }).find(path + ": the file changed size while it was being read ("),
            0u);
}

}  // namespace
}  // namespace moequant::io
