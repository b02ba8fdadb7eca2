// Reading the weights of a Hugging Face model folder, and writing its shard index.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "moequant/io/safetensors.h"

namespace moequant::io {

namespace detail {
struct FolderState;
}  // namespace detail

// Bytes [offset, offset + nbytes) of one tensor, clamped to it (by default all of it): what a
// reader of one expert of a fused tensor touches.
struct TensorSpan {
  std::string name;
  uint64_t offset = 0;
  uint64_t nbytes = UINT64_MAX;
};

constexpr const char* kSingleFileName = "model.safetensors";
constexpr const char* kIndexFileName = "model.safetensors.index.json";

// The tensors of a model folder: `model.safetensors`, or `model.safetensors.index.json` plus the
// shards it names (when both exist the single file wins, as in transformers).
//
// open() validates the index (well-formed JSON, a non-empty "weight_map" of tensor name -> plain
// file name in the folder, every file present) but maps no shard: each shard is opened on first
// use, so a rank reads only the shards holding its own tensors. Opening a shard checks it against
// the index: it holds every tensor the index maps to it, and every tensor it holds is mapped to
// it. validate_all() runs those checks for every shard at once. Safe to use from several threads.
class CheckpointFolder {
 public:
  static CheckpointFolder open(const std::string& dir);

  CheckpointFolder(CheckpointFolder&&) noexcept;
  CheckpointFolder& operator=(CheckpointFolder&&) noexcept;
  ~CheckpointFolder();

  const std::string& dir() const;
  bool sharded() const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  bool has(const std::string& name) const;
  // Throws, naming the tensor, when the checkpoint has no tensor `name`.
  const TensorInfo& info(const std::string& name) const;
  // The tensor's bytes, valid while this object lives (see SafetensorsFile::data).
  const uint8_t* data(const std::string& name) const;
  // Drops the resident pages of a tensor already read (see SafetensorsFile::release).
  void release(const std::string& name) const { release(TensorSpan{name}); }
  void release(const TensorSpan& span) const;
  // Starts reading a tensor's pages ahead of use (see SafetensorsFile::prefetch).
  void prefetch(const std::string& name) const { prefetch(TensorSpan{name}); }
  void prefetch(const TensorSpan& span) const;
  // The file holding `name`, relative to dir() (e.g. "model-00001-of-00002.safetensors").
  std::string file_of(const std::string& name) const;
  // The distinct weight files, sorted.
  std::vector<std::string> files() const;
  // Opens every shard now, running the per-shard consistency checks.
  void validate_all() const;

 private:
  explicit CheckpointFolder(std::unique_ptr<detail::FolderState> state);
  const SafetensorsFile& shard(size_t file_index) const;
  size_t file_index_of(const std::string& name) const;

  std::unique_ptr<detail::FolderState> state_;
};

// Writes `{"metadata": {"total_size": N}, "weight_map": {name: file}}` to `path`: keys sorted,
// 2-space indent, trailing newline (what transformers writes), fsynced. Deterministic.
void write_index(const std::string& path, uint64_t total_size,
                 const std::map<std::string, std::string>& weight_map);

}  // namespace moequant::io
