#include "moequant/model/config_values.h"

#include <cmath>

#include "moequant/common/error.h"
#include "moequant/common/strings.h"

namespace moequant {

namespace {

// The value of the first present key, or nullptr.
const nlohmann::json* first_present(const nlohmann::json& c, const std::vector<const char*>& keys,
                                    const char** which) {
  for (const char* k : keys)
    if (config_has(c, k)) {
      *which = k;
      return &c[k];
    }
  return nullptr;
}

int64_t checked_int(const nlohmann::json& v, const char* key, const std::string& file, int64_t lo,
                    int64_t hi) {
  const std::string range = str_cat("an integer in ", lo, " .. ", hi);
  MQ_CHECK(v.is_number_integer(), file, ": '", key, "' is ", v.dump(), ", expected ", range);
  // Read as the widest type nlohmann holds it in: a value beyond int64 is an unsigned one.
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    MQ_THROW(file, ": '", key, "' is ", v.get<uint64_t>(), ", expected ", range);
  const int64_t n = v.get<int64_t>();
  MQ_CHECK(n >= lo && n <= hi, file, ": '", key, "' is ", n, ", expected ", range);
  return n;
}

}  // namespace

bool config_has(const nlohmann::json& c, const char* key) {
  return c.is_object() && c.contains(key) && !c[key].is_null();
}

int64_t config_int(const nlohmann::json& c, const std::vector<const char*>& keys,
                   const std::string& file, int64_t lo, int64_t hi) {
  const char* key = nullptr;
  if (const nlohmann::json* v = first_present(c, keys, &key))
    return checked_int(*v, key, file, lo, hi);
  std::vector<std::string> names;
  for (const char* k : keys) names.push_back(std::string("'") + k + "'");
  MQ_THROW(file, ": missing ", join(names, " or "));
}

int64_t config_int_or(const nlohmann::json& c, const std::vector<const char*>& keys,
                      const std::string& file, int64_t fallback, int64_t lo, int64_t hi) {
  const char* key = nullptr;
  if (const nlohmann::json* v = first_present(c, keys, &key))
    return checked_int(*v, key, file, lo, hi);
  return fallback;
}

double config_number(const nlohmann::json& c, const char* key, const std::string& file,
                     double fallback) {
  if (!config_has(c, key)) return fallback;
  MQ_CHECK(c[key].is_number() && std::isfinite(c[key].get<double>()), file, ": '", key, "' is ",
           c[key].dump(), ", expected a finite number");
  return c[key].get<double>();
}

bool config_bool(const nlohmann::json& c, const char* key, const std::string& file, bool fallback) {
  if (!config_has(c, key)) return fallback;
  MQ_CHECK(c[key].is_boolean(), file, ": '", key, "' is ", c[key].dump(),
           ", expected true or false");
  return c[key].get<bool>();
}

}  // namespace moequant
