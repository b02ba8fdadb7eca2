// Typed access to the values of a tokenizer.json, each carrying where it sits (the file and its
// JSON path, "model.merges[17]"), so that every error names both.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace moequant::tokenizer {

using json = nlohmann::json;

class JsonAt {
 public:
  // `file` must outlive this value and every value taken from it.
  JsonAt(const json& value, const std::string& file, std::string path)
      : value_(&value), file_(&file), path_(std::move(path)) {}

  const json& value() const { return *value_; }
  const std::string& file() const { return *file_; }
  const std::string& path() const { return path_; }
  // "file: path", the prefix of every message about this value.
  std::string where() const;

  // A member that must be present (null counts as present); throws naming the member when absent.
  JsonAt at(const char* key) const;
  // A member that may be absent or null.
  std::optional<JsonAt> find(const char* key) const;
  // An element of an array.
  JsonAt at(size_t index) const;

  bool is_null() const { return value_->is_null(); }
  // Type-checked reads; each throws "<where>: expected a string (got number)" and the like.
  const std::string& string() const;
  bool boolean() const;
  int64_t integer() const;
  // The size of an array (throws when not an array).
  size_t array_size() const;
  // Throws unless this is an object.
  void expect_object() const;

  // Throws naming the first member that is not in `known`: a field we do not know may change the
  // ids, so it is refused rather than ignored.
  void expect_only(std::initializer_list<const char*> known) const;

  // Optional members with a default: absent or null gives `fallback`.
  bool boolean_or(const char* key, bool fallback) const;

 private:
  const json* value_;
  const std::string* file_;
  std::string path_;
};

// The name of a JSON value's type ("string", "number", ...), for messages.
const char* json_type_name(const json& value);

}  // namespace moequant::tokenizer
