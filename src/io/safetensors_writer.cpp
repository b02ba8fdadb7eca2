// SafetensorsWriter: streams tensors to disk in a fixed order with bounded memory.
#include <unistd.h>

#include <cstring>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "moequant/common/error.h"
#include "moequant/io/safetensors.h"
#include "posix_file.h"

namespace moequant::io {

namespace {

// Small tensors (scales) are gathered up to this size before a write(2); larger ones go straight
// through. This is the writer's whole memory footprint besides the list of specs.
constexpr size_t kBufferBytes = size_t{1} << 20;

// JSON string literal for `s`; refuses strings that are not valid UTF-8.
std::string quoted(const std::string& s, const char* what) {
  try {
    return nlohmann::json(s).dump();
  } catch (const nlohmann::json::exception&) {
    MQ_THROW(what, " '", s, "' is not valid UTF-8");
  }
}

std::string json_shape(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

std::string serialize_header(const std::vector<TensorSpec>& tensors,
                             const std::map<std::string, std::string>& metadata) {
  // Written by hand rather than through a JSON object: keeps the tensors in write order and the
  // text identical for identical inputs, in O(n).
  std::string out = "{";
  if (!metadata.empty()) {
    out += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!first) out += ",";
      first = false;
      out += quoted(k, "metadata key") + ":" + quoted(v, "metadata value");
    }
    out += "}";
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const TensorSpec& t : tensors) {
    MQ_CHECK(t.name != "__metadata__", "'__metadata__' cannot name a tensor");
    MQ_CHECK(names.insert(t.name).second, "tensor '", t.name, "' is listed twice");
    const uint64_t bytes = tensor_nbytes(t.dtype, t.shape, str_cat("tensor '", t.name, "'"));
    uint64_t end = 0;
    MQ_CHECK(!__builtin_add_overflow(offset, bytes, &end), "tensor '", t.name,
             "': the data section would exceed 2^64 bytes");
    if (out.size() > 1) out += ",";
    out += quoted(t.name, "tensor name") + ":{\"dtype\":\"" + dtype_name(t.dtype) +
           "\",\"shape\":" + json_shape(t.shape) + ",\"data_offsets\":[" + std::to_string(offset) +
           "," + std::to_string(end) + "]}";
    offset = end;
  }
  out += "}";
  // Pad with spaces so the data section starts 8-byte aligned, as the reference does.
  out.append((8 - out.size() % 8) % 8, ' ');
  return out;
}

std::string file_start(const std::vector<TensorSpec>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string header = serialize_header(tensors, metadata);
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorSpec> tensors,
                                     std::map<std::string, std::string> metadata)
    : path_(std::move(path)), specs_(std::move(tensors)) {
  std::string start;  // length prefix and header
  try {
    start = file_start(specs_, metadata);
  } catch (const Error& e) {
    MQ_THROW(path_, ": ", e.what());
  }
  spec_bytes_.reserve(specs_.size());
  for (const TensorSpec& t : specs_) {
    spec_bytes_.push_back(tensor_nbytes(t.dtype, t.shape, t.name));
    data_size_ += spec_bytes_.back();
  }
  file_size_ = start.size() + data_size_;

  buffer_.reserve(kBufferBytes);
  fd_ = detail::open_for_write(path_);
  try {
    append(start.data(), start.size());
  } catch (...) {
    ::close(fd_);
    ::unlink(path_.c_str());
    throw;
  }
}

SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&& other) noexcept
    : path_(std::move(other.path_)),
      specs_(std::move(other.specs_)),
      spec_bytes_(std::move(other.spec_bytes_)),
      next_(other.next_),
      fd_(std::exchange(other.fd_, -1)),
      finished_(std::exchange(other.finished_, true)),  // the moved-from one removes nothing
      broken_(other.broken_),
      file_size_(other.file_size_),
      data_size_(other.data_size_),
      buffer_(std::move(other.buffer_)) {}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(path_.c_str());  // never leave a partial file that looks valid
}

void SafetensorsWriter::fail_if_broken() const {
  MQ_CHECK(!finished_, path_, ": writer already finished");
  MQ_CHECK(!broken_, path_, ": writer unusable after an earlier I/O error");
}

void SafetensorsWriter::write(const std::string& name, const void* data, size_t nbytes) {
  fail_if_broken();
  // Misuse is reported before anything is written, so the file stays consistent.
  MQ_CHECK(next_ < specs_.size(), path_, ": all ", specs_.size(),
           " tensors already written, got another: '", name, "'");
  const TensorSpec& spec = specs_[next_];
  MQ_CHECK(name == spec.name, path_, ": expected tensor '", spec.name, "' next (", next_ + 1,
           " of ", specs_.size(), "), got '", name, "'");
  MQ_CHECK(nbytes == spec_bytes_[next_], path_, ": tensor '", name, "': got ", nbytes,
           " bytes, but ", dtype_name(spec.dtype), " ", shape_string(spec.shape), " needs ",
           spec_bytes_[next_]);
  MQ_CHECK(data != nullptr || nbytes == 0, path_, ": tensor '", name, "': data is null");
  append(data, nbytes);
  ++next_;
}

void SafetensorsWriter::finish() {
  fail_if_broken();
  MQ_CHECK(next_ == specs_.size(), path_, ": finish() after ", next_, " of ", specs_.size(),
           " tensors; tensor '", next_ < specs_.size() ? specs_[next_].name : "",
           "' was never written");
  try {
    flush_buffer();
  } catch (...) {
    broken_ = true;
    throw;
  }
  const int fd = std::exchange(fd_, -1);
  try {
    detail::sync_and_close(fd, path_);
  } catch (...) {
    broken_ = true;
    throw;
  }
  finished_ = true;
}

void SafetensorsWriter::append(const void* data, size_t nbytes) {
  try {
    if (buffer_.size() + nbytes > kBufferBytes) flush_buffer();
    if (nbytes >= kBufferBytes) {
      detail::write_all(fd_, data, nbytes, path_);
    } else if (nbytes > 0) {
      const auto* p = static_cast<const uint8_t*>(data);
      buffer_.insert(buffer_.end(), p, p + nbytes);
    }
  } catch (...) {
    broken_ = true;
    throw;
  }
}

void SafetensorsWriter::flush_buffer() {
  if (buffer_.empty()) return;
  detail::write_all(fd_, buffer_.data(), buffer_.size(), path_);
  buffer_.clear();
}

}  // namespace moequant::io
