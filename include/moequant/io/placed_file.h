// An output file whose layout is known before its bytes (docs/design.md, "Rank-aware export"):
// created once at its final size with its header in place, then written by any number of producers,
// threads or processes, each at its own planned offsets (pwrite), with no writer in between.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace moequant::io {

class PlacedFile {
 public:
  // Creates `path` (it must not exist), writes `head` at offset 0 and sets the size to `size`
  // bytes (the rest reads as zeros until written). Nothing stays open.
  static void create(const std::string& path, const std::string& head, uint64_t size);

  // Opens a created file for writing. A file of another size means this process does not see
  // the file its creator made (another filesystem): an error naming the path.
  PlacedFile(const std::string& path, uint64_t size);
  PlacedFile(PlacedFile&& other) noexcept;
  PlacedFile& operator=(PlacedFile&&) = delete;
  PlacedFile(const PlacedFile&) = delete;
  PlacedFile& operator=(const PlacedFile&) = delete;
  ~PlacedFile();  // closes without syncing when finish() was not called

  // Writes all `n` bytes at `offset`, which must lie inside the file. Safe from several threads.
  void write_at(uint64_t offset, const void* data, size_t n) const;
  // Closes the file; with `durable`, fsyncs it first so that the bytes survive a power loss
  // (a killed process loses nothing either way: the bytes are in the page cache).
  void finish(bool durable);

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  uint64_t size_ = 0;
  int fd_ = -1;
};

}  // namespace moequant::io
