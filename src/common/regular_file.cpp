#include "moequant/common/regular_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "moequant/common/error.h"

namespace moequant {

namespace {

const char* kind_of_mode(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

// Closes the descriptor whatever happens.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string file_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return errno == ENOENT ? "missing" : str_cat("unreadable (", std::strerror(errno), ")");
  return kind_of_mode(st.st_mode);
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked on the open
  // descriptor, so a file swapped in between cannot slip past.
  const Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  MQ_CHECK(f.fd >= 0, path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  MQ_CHECK(::fstat(f.fd, &st) == 0, path, ": cannot stat: ", std::strerror(errno));
  MQ_CHECK(S_ISREG(st.st_mode), path, ": not a regular file (", kind_of_mode(st.st_mode), ")");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  MQ_CHECK(size <= max_bytes, path, ": ", size, " bytes, more than the limit of ", max_bytes,
           " bytes for this file");
  std::string text;
  text.reserve(static_cast<size_t>(size));
  char chunk[65536];
  for (;;) {  // to the end, not to the size fstat saw: the file may have changed since
    const ssize_t n = ::read(f.fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    MQ_CHECK(n >= 0, path, ": read failed: ", std::strerror(errno));
    if (n == 0) break;
    MQ_CHECK(text.size() + static_cast<size_t>(n) <= max_bytes, path, ": more than the limit of ",
             max_bytes, " bytes for this file");
    text.append(chunk, static_cast<size_t>(n));
  }
  return text;
}

}  // namespace moequant
