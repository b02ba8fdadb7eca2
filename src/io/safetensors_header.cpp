// Parsing and validating safetensors headers.
//
// The JSON is read with a SAX handler rather than into a DOM: fields are checked as they stream
// past, memory stays proportional to the tensors found (a hostile header cannot build a huge or
// deeply nested tree), and duplicate keys, which a DOM silently merges, are caught.
#include <algorithm>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "moequant/common/error.h"
#include "moequant/io/safetensors.h"

namespace moequant::io {

namespace {

using json = nlohmann::json;

constexpr const char* kMetadataKey = "__metadata__";

// Where the handler stands in the expected structure:
//   {name: {"dtype": s, "shape": [n, ...], "data_offsets": [b, e], other: ignored},
//    "__metadata__": {key: s}}
enum class State {
  kBeforeRoot,
  kRoot,           // inside the root object: a key or the end
  kRootValue,      // after a root key: an entry object or the metadata object
  kMetadata,       // inside "__metadata__": a key or the end
  kMetadataValue,  // after a metadata key: a string
  kEntry,          // inside a tensor entry: a key or the end
  kDtypeValue,
  kShapeValue,    // the "[" of "shape"
  kShape,         // inside "shape"
  kOffsetsValue,  // the "[" of "data_offsets"
  kOffsets,       // inside "data_offsets"
  kSkip,          // inside the value of an unknown entry field (ignored, as the reference does)
  kDone,
};

class HeaderHandler {
 public:
  HeaderHandler(const std::string& file, uint64_t data_size) : file_(file), data_size_(data_size) {}

  bool done() const { return state_ == State::kDone; }
  Header take() { return std::move(header_); }

  // ---- the nlohmann SAX interface ----
  bool null() { return scalar("null"); }
  bool boolean(bool) { return scalar("a boolean"); }
  bool binary(json::binary_t&) { return scalar("binary data"); }
  bool number_float(json::number_float_t, const json::string_t& text) {
    return scalar(str_cat("the non-integer number ", text));
  }
  bool number_integer(json::number_integer_t v) {
    if (v >= 0) return number_unsigned(static_cast<uint64_t>(v));
    if (state_ == State::kShape) MQ_THROW(context(), ": shape has the negative dimension ", v);
    return scalar(str_cat("the negative number ", v));
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (state_ == State::kShape) {
      MQ_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), context(),
               ": shape dimension ", v, " is too large");
      entry_.shape.push_back(static_cast<int64_t>(v));
      return true;
    }
    if (state_ == State::kOffsets) {
      MQ_CHECK(offsets_.size() < 2, context(),
               ": 'data_offsets' must hold exactly 2 integers, got more");
      offsets_.push_back(v);
      return true;
    }
    return scalar("a number");
  }
  bool string(json::string_t& v) {
    if (state_ == State::kMetadataValue) {
      header_.metadata[metadata_key_] = v;
      state_ = State::kMetadata;
      return true;
    }
    if (state_ == State::kDtypeValue) {
      entry_.dtype = dtype_from_name(v, context());
      state_ = State::kEntry;
      return true;
    }
    return scalar("a string");
  }
  bool start_object(std::size_t) {
    switch (state_) {
      case State::kBeforeRoot:
        state_ = State::kRoot;
        return true;
      case State::kRootValue:
        if (root_key_ == kMetadataKey) {
          state_ = State::kMetadata;
        } else {
          entry_ = TensorInfo{};
          entry_.name = root_key_;
          offsets_.clear();
          seen_dtype_ = seen_shape_ = seen_offsets_ = false;
          state_ = State::kEntry;
        }
        return true;
      case State::kSkip:
        ++skip_depth_;
        return true;
      default:
        return unexpected("an object");
    }
  }
  bool start_array(std::size_t) {
    switch (state_) {
      case State::kShapeValue:
        state_ = State::kShape;
        return true;
      case State::kOffsetsValue:
        state_ = State::kOffsets;
        return true;
      case State::kSkip:
        ++skip_depth_;
        return true;
      default:
        return unexpected("an array");
    }
  }
  bool key(json::string_t& k) {
    switch (state_) {
      case State::kRoot:
        MQ_CHECK(root_keys_.insert(k).second, file_, ": header names '", k, "' twice");
        root_key_ = k;
        state_ = State::kRootValue;
        return true;
      case State::kMetadata:
        MQ_CHECK(header_.metadata.count(k) == 0, file_, ": __metadata__ names key '", k, "' twice");
        metadata_key_ = k;
        state_ = State::kMetadataValue;
        return true;
      case State::kEntry:
        if (k == "dtype") {
          state_ = field(seen_dtype_, k, State::kDtypeValue);
        } else if (k == "shape") {
          state_ = field(seen_shape_, k, State::kShapeValue);
        } else if (k == "data_offsets") {
          state_ = field(seen_offsets_, k, State::kOffsetsValue);
        } else {
          state_ = State::kSkip;
          skip_depth_ = 0;
        }
        return true;
      default:  // keys inside a skipped value
        return true;
    }
  }
  bool end_object() {
    switch (state_) {
      case State::kRoot:
        state_ = State::kDone;
        return true;
      case State::kMetadata:
        state_ = State::kRoot;
        return true;
      case State::kEntry:
        finish_entry();
        state_ = State::kRoot;
        return true;
      case State::kSkip:
        return end_skipped();
      default:  // the SAX parser's syntax checks make this unreachable
        MQ_THROW(file_, ": malformed header");
    }
  }
  bool end_array() {
    switch (state_) {
      case State::kShape:
        state_ = State::kEntry;
        return true;
      case State::kOffsets:
        MQ_CHECK(offsets_.size() == 2, context(),
                 ": 'data_offsets' must hold exactly 2 integers, got ", offsets_.size());
        state_ = State::kEntry;
        return true;
      case State::kSkip:
        return end_skipped();
      default:  // the SAX parser's syntax checks make this unreachable
        MQ_THROW(file_, ": malformed header");
    }
  }
  bool parse_error(std::size_t, const std::string&, const json::exception& e) {
    MQ_THROW(file_, ": header is not valid JSON: ", e.what());
  }

 private:
  std::string context() const { return str_cat(file_, ": tensor '", entry_.name, "'"); }

  State field(bool& seen, const std::string& k, State next) const {
    MQ_CHECK(!seen, context(), ": '", k, "' given twice");
    seen = true;
    return next;
  }

  // A scalar value: legal only where a skipped value is being consumed.
  bool scalar(const std::string& what) {
    if (state_ != State::kSkip) return unexpected(what);
    if (skip_depth_ == 0) state_ = State::kEntry;
    return true;
  }

  bool end_skipped() {
    if (--skip_depth_ == 0) state_ = State::kEntry;
    return true;
  }

  // Throws the message that fits what the current position expected.
  bool unexpected(const std::string& got) const {
    switch (state_) {
      case State::kBeforeRoot:
        MQ_THROW(file_, ": header must be a JSON object, got ", got);
      case State::kRootValue:
        if (root_key_ == kMetadataKey)
          MQ_THROW(file_, ": __metadata__ must be an object of strings, got ", got);
        MQ_THROW(file_, ": tensor '", root_key_, "': entry must be an object, got ", got);
      case State::kMetadataValue:
        MQ_THROW(file_, ": __metadata__ key '", metadata_key_, "' must map to a string, got ", got);
      case State::kDtypeValue:
        MQ_THROW(context(), ": 'dtype' must be a string, got ", got);
      case State::kShapeValue:
      case State::kShape:
        MQ_THROW(context(), ": 'shape' must be an array of non-negative integers, got ", got);
      case State::kOffsetsValue:
      case State::kOffsets:
        MQ_THROW(context(), ": 'data_offsets' must be an array of 2 non-negative integers, got ",
                 got);
      default:
        MQ_THROW(file_, ": unexpected ", got, " in the header");
    }
  }

  void finish_entry() {
    const std::string where = context();
    MQ_CHECK(seen_dtype_, where, ": missing 'dtype'");
    MQ_CHECK(seen_shape_, where, ": missing 'shape'");
    MQ_CHECK(seen_offsets_, where, ": missing 'data_offsets'");
    entry_.begin = offsets_[0];
    entry_.end = offsets_[1];
    MQ_CHECK(entry_.begin <= entry_.end, where, ": data_offsets [", entry_.begin, ", ", entry_.end,
             ") end before they begin");
    MQ_CHECK(entry_.end <= data_size_, where, ": data_offsets [", entry_.begin, ", ", entry_.end,
             ") run past the end of the data section (", data_size_, " bytes)");
    const uint64_t needed = tensor_nbytes(entry_.dtype, entry_.shape, where);
    const uint64_t held = entry_.end - entry_.begin;
    MQ_CHECK(held == needed, where, ": data_offsets [", entry_.begin, ", ", entry_.end, ") hold ",
             held, " bytes but ", dtype_name(entry_.dtype), " ", shape_string(entry_.shape),
             " needs ", needed);
    header_.tensors.push_back(std::move(entry_));
  }

  const std::string& file_;
  const uint64_t data_size_;
  State state_ = State::kBeforeRoot;
  Header header_;
  std::set<std::string> root_keys_;
  std::string root_key_;
  std::string metadata_key_;
  TensorInfo entry_;
  std::vector<uint64_t> offsets_;
  bool seen_dtype_ = false, seen_shape_ = false, seen_offsets_ = false;
  int64_t skip_depth_ = 0;
};

std::string range_string(const TensorInfo& t) {
  return str_cat("[", t.begin, ", ", t.end, ")");
}

// Sorted by begin, the tensors must tile [0, data_size) exactly.
void check_tiling(std::vector<TensorInfo>& tensors, const std::string& file, uint64_t data_size) {
  // Stable, with `end` as tie-break: empty tensors sharing an offset keep their header order.
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const TensorInfo* prev = nullptr;
  uint64_t covered = 0;  // [0, covered) is tiled so far
  for (const TensorInfo& t : tensors) {
    if (t.begin < covered)
      MQ_THROW(file, ": tensor '", t.name, "': data_offsets ", range_string(t), " overlap tensor '",
               prev->name, "' ", range_string(*prev));
    if (t.begin > covered) {
      if (prev == nullptr)
        MQ_THROW(file, ": tensor '", t.name, "': data_offsets ", range_string(t),
                 " leave a gap: bytes [0, ", t.begin, ") belong to no tensor");
      MQ_THROW(file, ": tensor '", t.name, "': data_offsets ", range_string(t),
               " leave a gap: bytes [", covered, ", ", t.begin, ") after tensor '", prev->name,
               "' belong to no tensor");
    }
    covered = t.end;
    prev = &t;
  }
  MQ_CHECK(covered == data_size, file, ": bytes [", covered, ", ", data_size,
           ") at the end of the data section belong to no tensor");
}

}  // namespace

Header parse_header(const uint8_t* bytes, size_t size, const std::string& file,
                    uint64_t data_size) {
  HeaderHandler handler(file, data_size);
  const char* text = reinterpret_cast<const char*>(bytes);
  const bool ok = json::sax_parse(text, text + size, &handler, json::input_format_t::json,
                                  /*strict=*/true, /*ignore_comments=*/false);
  MQ_CHECK(ok && handler.done(), file, ": header is not a complete JSON object");
  Header header = handler.take();
  check_tiling(header.tensors, file, data_size);
  return header;
}

FileLayout parse_file(const uint8_t* bytes, size_t size, const std::string& file) {
  MQ_CHECK(size >= 8, file, ": file is ", size,
           " bytes, too short for the 8-byte header length (truncated?)");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];  // little-endian
  MQ_CHECK(header_size <= kMaxHeaderBytes, file, ": header length ", header_size,
           " exceeds the limit of ", kMaxHeaderBytes, " bytes (corrupt or not safetensors)");
  MQ_CHECK(header_size <= size - 8, file, ": header length ", header_size,
           " runs past the end of the file (", size, " bytes; truncated?)");
  FileLayout layout;
  layout.data_start = 8 + header_size;
  layout.header = parse_header(bytes + 8, header_size, file, size - layout.data_start);
  return layout;
}

}  // namespace moequant::io
