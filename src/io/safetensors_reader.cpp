// SafetensorsFile: a read-only mapping of one safetensors file.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>

#include <cerrno>
#include <cstring>
#include <functional>
#include <utility>

#include "moequant/common/error.h"
#include "moequant/common/mapped_files.h"
#include "moequant/io/safetensors.h"

namespace moequant::io {

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO by mistake must not hang; it changes nothing for regular files.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  MQ_CHECK(fd >= 0, path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  const int stat_rc = ::fstat(fd, &st);
  const int stat_errno = errno;
  if (stat_rc != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    MQ_CHECK(stat_rc == 0, path, ": cannot stat: ", std::strerror(stat_errno));
    MQ_THROW(path, ": not a regular file");
  }
  SafetensorsFile file;
  file.path_ = path;
  file.size_ = static_cast<size_t>(st.st_size);
  // Kept open: every access checks that the file still has the size it was mapped with.
  file.fd_ = fd;
  if (file.size_ > 0) {  // mmap refuses length 0; parse_file reports the empty file
    void* p = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    MQ_CHECK(p != MAP_FAILED, path, ": cannot mmap: ", std::strerror(errno));
    file.base_ = static_cast<const uint8_t*>(p);
    remember_mapping(p, file.size_, path);  // a bus error inside it is reported naming the file
  }
  // From here on the destructor unmaps if validation throws.
  file.layout_ = parse_file(file.base_, file.size_, path);
  const auto& tensors = file.layout_.header.tensors;
  file.index_.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) file.index_.emplace(tensors[i].name, i);
  return file;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      base_(std::exchange(other.base_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      layout_(std::move(other.layout_)),
      index_(std::move(other.index_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    layout_ = std::move(other.layout_);
    index_ = std::move(other.index_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  unmap();
}

void SafetensorsFile::unmap() noexcept {
  if (base_ != nullptr) {
    forget_mapping(base_);
    ::munmap(const_cast<uint8_t*>(base_), size_);
  }
  if (fd_ >= 0) ::close(fd_);
  base_ = nullptr;
  fd_ = -1;
  size_ = 0;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors()[it->second];
}

const uint8_t* SafetensorsFile::data(const TensorInfo& info) const {
  // Offsets were validated against this file only: refuse a TensorInfo from anywhere else.
  const std::vector<TensorInfo>& all = tensors();
  const std::less<const TensorInfo*> before;
  const bool ours =
      !all.empty() && !before(&info, all.data()) && before(&info, all.data() + all.size());
  MQ_CHECK(ours, path_, ": tensor '", info.name, "' does not come from this file");
  check_unchanged_size(info);
  return base_ + layout_.data_start + info.begin;
}

void SafetensorsFile::check_unchanged_size(const TensorInfo& info) const {
  // Reading a mapped page past the end of a file that shrank raises SIGBUS: a file cut while the
  // run reads it (another job rewriting the checkpoint) is refused here, naming it, instead.
  struct stat st {};
  if (fd_ < 0 || ::fstat(fd_, &st) != 0) return;
  MQ_CHECK(static_cast<uint64_t>(st.st_size) == size_, path_, ": the file changed size while it ",
           "was being read (", size_, " bytes when opened, ", st.st_size, " now; reading tensor '",
           info.name, "'): the checkpoint must not change during a run");
}

namespace {

// [begin, end) of the tensor's bytes [offset, offset + nbytes), clamped to the tensor.
std::pair<uintptr_t, uintptr_t> byte_range(const uint8_t* data, const TensorInfo& info,
                                           uint64_t offset, uint64_t nbytes) {
  const uint64_t from = std::min(offset, info.nbytes());
  const uint64_t n = std::min(nbytes, info.nbytes() - from);
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data) + from;
  return {begin, begin + n};
}

}  // namespace

void SafetensorsFile::release(const TensorInfo& info, uint64_t offset, uint64_t nbytes) const {
  // Whole pages inside the range only: a neighbour sharing an edge page keeps it.
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto [begin, end] = byte_range(data(info), info, offset, nbytes);
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  // The mapping is a private, read-only file mapping: dropped pages are read again from the file
  // if touched later, so this only lowers resident memory. Failure is harmless and ignored.
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void SafetensorsFile::prefetch(const TensorInfo& info, uint64_t offset, uint64_t nbytes) const {
  // Asks the kernel to start reading the range's pages now (readahead), so that a reader that
  // touches them a little later finds them in memory. Advisory: failure is ignored.
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto [begin_byte, end] = byte_range(data(info), info, offset, nbytes);
  const uintptr_t begin = begin_byte / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_WILLNEED);
}

}  // namespace moequant::io
