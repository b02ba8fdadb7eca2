// safetensors reading and writing, torch-free.
//
// File layout (docs/formats.md): an 8-byte little-endian header length N, N bytes of JSON header
// ({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}), then
// the data section, which the tensors tile exactly (no gaps, no overlaps, nothing after).
//
// Everything read from a file is validated before use; every problem throws moequant::Error
// naming the file and, where there is one, the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "moequant/common/dtype.h"
#include "moequant/common/strings.h"

namespace moequant::io {

// One tensor as the header describes it.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;  // empty: a 0-d scalar (one element)
  uint64_t begin = 0;          // byte offsets relative to the start of the data section
  uint64_t end = 0;

  // Product of the shape (1 for a scalar). Parsed headers guarantee it does not overflow.
  int64_t numel() const;
  // Bytes of data: numel() * dtype_size(dtype); equals end - begin in a parsed header.
  uint64_t nbytes() const;
};

struct Header {
  std::vector<TensorInfo> tensors;  // in data order (sorted by begin)
  std::map<std::string, std::string> metadata;
};

// Bytes of a tensor of this dtype and shape; throws (naming `context`) when a dimension is
// negative or the byte count overflows 64 bits.
uint64_t tensor_nbytes(DType dtype, const std::vector<int64_t>& shape, const std::string& context);

// Largest header accepted, as in the reference implementation: a header length field above it
// is rejected before anything is allocated.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Parses and validates the JSON header `bytes[0, size)` of `file`, whose data section holds
// `data_size` bytes. Checks: well-formed JSON object without duplicate keys; each entry an object
// with a known string "dtype", a "shape" of non-negative integers, "data_offsets" of two
// integers begin <= end <= data_size holding exactly numel * dtype size bytes; the tensors tile
// [0, data_size) exactly; "__metadata__", if present, maps strings to strings.
Header parse_header(const uint8_t* bytes, size_t size, const std::string& file, uint64_t data_size);

// A whole file image split into its validated header and the offset of its data section.
struct FileLayout {
  Header header;
  uint64_t data_start = 0;  // 8 + header length
};

// Parses a complete safetensors image held in memory (a mapping, a fuzzer's buffer): checks the
// length prefix against `size` and kMaxHeaderBytes, then parse_header. Touches no tensor bytes.
FileLayout parse_file(const uint8_t* bytes, size_t size, const std::string& file);

// A read-only memory mapping of one safetensors file. Opening reads only the header; a tensor's
// pages are touched only when its data is read. Pointers returned by data() live as long as the
// object and are not necessarily aligned to the dtype (files may order tensors freely). The file
// must not change while mapped: data() checks that it still has the size it was opened with
// (reading a vanished page would raise SIGBUS) and throws naming the file when not.
// Immutable after open(): safe to read from several threads.
class SafetensorsFile {
 public:
  // Maps `path` (read-only, MAP_PRIVATE) and validates it; throws moequant::Error on any problem.
  static SafetensorsFile open(const std::string& path);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // In data order.
  const std::vector<TensorInfo>& tensors() const { return layout_.header.tensors; }
  const std::map<std::string, std::string>& metadata() const { return layout_.header.metadata; }
  // nullptr when the file holds no tensor of that name.
  const TensorInfo* find(const std::string& name) const;
  // The tensor's bytes [data(info), data(info) + info.nbytes()); `info` must come from this file.
  const uint8_t* data(const TensorInfo& info) const;
  // Lets the kernel drop the resident pages of a tensor that was read (madvise DONTNEED on the
  // private read-only mapping): a streaming reader keeps its memory bounded this way. The bytes
  // stay readable; touching them again reads them from the file.
  // Bytes [offset, offset + nbytes) of the tensor only (clamped to it) when given: one expert of
  // a fused tensor.
  void release(const TensorInfo& info, uint64_t offset = 0, uint64_t nbytes = UINT64_MAX) const;
  // Starts reading a tensor's pages ahead of use (madvise WILLNEED); advisory. A byte range as
  // release's.
  void prefetch(const TensorInfo& info, uint64_t offset = 0, uint64_t nbytes = UINT64_MAX) const;

 private:
  SafetensorsFile() = default;
  void unmap() noexcept;
  void check_unchanged_size(const TensorInfo& info) const;

  std::string path_;
  int fd_ = -1;                    // kept open for the size check
  const uint8_t* base_ = nullptr;  // start of the mapping (nullptr: nothing mapped)
  size_t size_ = 0;                // bytes mapped
  FileLayout layout_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in tensors()
};

// What the writer is told up front about each tensor.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
};

// Streams a safetensors file with bounded memory. The constructor writes the whole header at
// once (the layout is fixed by the specs); then write() is called once per tensor, in the order
// given, with exactly that tensor's byte count; finish() flushes, fsyncs and closes. The header
// is deterministic: "__metadata__" first (sorted keys), then the tensors in write order, padded
// with spaces to a multiple of 8 bytes as the reference implementation does. A writer destroyed
// before finish() succeeded removes its partial file.
class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorSpec> tensors,
                    std::map<std::string, std::string> metadata = {});
  SafetensorsWriter(SafetensorsWriter&& other) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&&) = delete;
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter();

  // Writes the next tensor's bytes; `name` and `nbytes` must match the next spec.
  void write(const std::string& name, const void* data, size_t nbytes);
  // Checks that every tensor was written, then flushes, fsyncs and closes the file.
  void finish();

  const std::string& path() const { return path_; }
  // Total file size once finished (8 + header + data).
  uint64_t file_size() const { return file_size_; }
  // Data bytes (sum of tensor sizes), what an index's "total_size" counts.
  uint64_t data_size() const { return data_size_; }

 private:
  void append(const void* data, size_t nbytes);
  void flush_buffer();
  void fail_if_broken() const;

  std::string path_;
  std::vector<TensorSpec> specs_;
  std::vector<uint64_t> spec_bytes_;
  size_t next_ = 0;  // index of the next tensor to write
  int fd_ = -1;
  bool finished_ = false;
  bool broken_ = false;  // an earlier call failed: refuse further writes
  uint64_t file_size_ = 0;
  uint64_t data_size_ = 0;
  std::vector<uint8_t> buffer_;  // coalesces small tensors (scales) into fewer syscalls
};

// Serializes the header exactly as SafetensorsWriter writes it (length prefix excluded, padding
// included); throws on duplicate names, bad shapes or a "__metadata__" tensor name.
std::string serialize_header(const std::vector<TensorSpec>& tensors,
                             const std::map<std::string, std::string>& metadata);

// The bytes a safetensors file of `tensors` starts with: the 8-byte little-endian length of the
// header, then the header (serialize_header). Its data section follows, in `tensors` order.
std::string file_start(const std::vector<TensorSpec>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace moequant::io
