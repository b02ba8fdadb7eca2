#include "moequant/io/placed_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "moequant/common/error.h"
#include "posix_file.h"

namespace moequant::io {

void PlacedFile::create(const std::string& path, const std::string& head, uint64_t size) {
  MQ_CHECK(head.size() <= size, path, ": header of ", head.size(), " bytes exceeds the file size ",
           size);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  MQ_CHECK(fd >= 0, path, ": cannot create: ", std::strerror(errno));
  try {
    detail::write_all(fd, head.data(), head.size(), path);
    MQ_CHECK(::ftruncate(fd, static_cast<off_t>(size)) == 0, path, ": cannot size to ", size,
             " bytes: ", std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(path.c_str());
    throw;
  }
  MQ_CHECK(::close(fd) == 0, path, ": close failed: ", std::strerror(errno));
}

PlacedFile::PlacedFile(const std::string& path, uint64_t size) : path_(path), size_(size) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  MQ_CHECK(fd_ >= 0, path, ": cannot open for writing: ", std::strerror(errno),
           " (every rank must see the output folder on one shared filesystem)");
  struct stat st {};
  const bool ok = ::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) == size;
  if (!ok) {
    ::close(fd_);
    fd_ = -1;
    MQ_THROW(path, ": has ", st.st_size, " bytes where ", size,
             " were created (every rank must see the output folder on one shared filesystem)");
  }
}

PlacedFile::PlacedFile(PlacedFile&& other) noexcept
    : path_(std::move(other.path_)), size_(other.size_), fd_(other.fd_) {
  other.fd_ = -1;
}

PlacedFile::~PlacedFile() {
  if (fd_ >= 0) ::close(fd_);
}

void PlacedFile::write_at(uint64_t offset, const void* data, size_t n) const {
  MQ_CHECK(fd_ >= 0, path_, ": write after close");
  MQ_CHECK(offset <= size_ && n <= size_ - offset, path_, ": write of ", n, " bytes at ", offset,
           " runs past the planned size ", size_);
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    MQ_CHECK(w > 0, path_, ": write of ", n, " bytes at offset ", offset,
             " failed: ", w < 0 ? std::strerror(errno) : "wrote nothing");
    p += w;
    offset += static_cast<uint64_t>(w);
    n -= static_cast<size_t>(w);
  }
}

void PlacedFile::finish(bool durable) {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  if (durable)
    detail::sync_and_close(fd, path_);
  else
    detail::close_checked(fd, path_);
}

}  // namespace moequant::io
