// Small POSIX file helpers shared by the safetensors writer and the index writer. Internal to
// src/io; every failure throws moequant::Error naming the path and the system error.
#pragma once

#include <cstddef>
#include <string>

namespace moequant::io::detail {

// Creates (or truncates) `path` for writing; returns the descriptor.
int open_for_write(const std::string& path);
// Writes all `size` bytes, retrying on EINTR and short writes.
void write_all(int fd, const void* data, size_t size, const std::string& path);
// fsyncs and closes `fd`; the descriptor is closed even when this throws.
void sync_and_close(int fd, const std::string& path);
// Closes `fd`, checking the result (a deferred write error shows here).
void close_checked(int fd, const std::string& path);
// Writes a small file whole (create/truncate, write, fsync, close); removes it on failure.
void write_whole_file(const std::string& path, const std::string& contents);
// True when `path` names an existing regular file (following symlinks).
bool is_regular_file(const std::string& path);

}  // namespace moequant::io::detail
