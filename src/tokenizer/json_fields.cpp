#include "json_fields.h"

#include "moequant/common/error.h"

namespace moequant::tokenizer {

const char* json_type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "object";
    case json::value_t::array:
      return "array";
    case json::value_t::string:
      return "string";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "number";
    default:
      return "value";
  }
}

std::string JsonAt::where() const {
  return path_.empty() ? *file_ : *file_ + ": " + path_;
}

void JsonAt::expect_object() const {
  MQ_CHECK(value_->is_object(), where(), ": expected an object (got ", json_type_name(*value_),
           ")");
}

JsonAt JsonAt::at(const char* key) const {
  expect_object();
  const auto it = value_->find(key);
  MQ_CHECK(it != value_->end(), where(), ": missing field '", key, "'");
  return JsonAt(*it, *file_, path_.empty() ? key : path_ + "." + key);
}

std::optional<JsonAt> JsonAt::find(const char* key) const {
  expect_object();
  const auto it = value_->find(key);
  if (it == value_->end() || it->is_null()) return std::nullopt;
  return JsonAt(*it, *file_, path_.empty() ? key : path_ + "." + key);
}

JsonAt JsonAt::at(size_t index) const {
  MQ_CHECK(value_->is_array(), where(), ": expected an array (got ", json_type_name(*value_), ")");
  MQ_CHECK(index < value_->size(), where(), ": no element ", index);
  return JsonAt((*value_)[index], *file_, path_ + "[" + std::to_string(index) + "]");
}

const std::string& JsonAt::string() const {
  MQ_CHECK(value_->is_string(), where(), ": expected a string (got ", json_type_name(*value_), ")");
  return value_->get_ref<const std::string&>();
}

bool JsonAt::boolean() const {
  MQ_CHECK(value_->is_boolean(), where(), ": expected true or false (got ", json_type_name(*value_),
           ")");
  return value_->get<bool>();
}

int64_t JsonAt::integer() const {
  MQ_CHECK(value_->is_number_integer(), where(), ": expected an integer (got ",
           json_type_name(*value_), ")");
  return value_->get<int64_t>();
}

size_t JsonAt::array_size() const {
  MQ_CHECK(value_->is_array(), where(), ": expected an array (got ", json_type_name(*value_), ")");
  return value_->size();
}

void JsonAt::expect_only(std::initializer_list<const char*> known) const {
  expect_object();
  for (const auto& item : value_->items()) {
    bool found = false;
    for (const char* k : known) found = found || item.key() == k;
    MQ_CHECK(found, where(), ": unsupported field '", item.key(), "'");
  }
}

bool JsonAt::boolean_or(const char* key, bool fallback) const {
  const auto v = find(key);
  return v ? v->boolean() : fallback;
}

}  // namespace moequant::tokenizer
