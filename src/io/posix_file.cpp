#include "posix_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "moequant/common/error.h"

namespace moequant::io::detail {

int open_for_write(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  MQ_CHECK(fd >= 0, path, ": cannot create: ", std::strerror(errno));
  return fd;
}

void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    MQ_CHECK(n > 0, path, ": write failed: ", n < 0 ? std::strerror(errno) : "wrote nothing");
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void sync_and_close(int fd, const std::string& path) {
  // Both run whatever happens, so that the descriptor never leaks.
  const int sync_rc = ::fsync(fd);
  const int sync_errno = errno;
  const int close_rc = ::close(fd);
  const int close_errno = errno;
  MQ_CHECK(sync_rc == 0, path, ": fsync failed: ", std::strerror(sync_errno));
  MQ_CHECK(close_rc == 0, path, ": close failed: ", std::strerror(close_errno));
}

void close_checked(int fd, const std::string& path) {
  MQ_CHECK(::close(fd) == 0, path, ": close failed: ", std::strerror(errno));
}

void write_whole_file(const std::string& path, const std::string& contents) {
  const int fd = open_for_write(path);
  try {
    write_all(fd, contents.data(), contents.size(), path);
  } catch (...) {
    ::close(fd);
    ::unlink(path.c_str());
    throw;
  }
  try {
    sync_and_close(fd, path);
  } catch (...) {
    ::unlink(path.c_str());
    throw;
  }
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace moequant::io::detail
