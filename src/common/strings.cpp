#include "moequant/common/strings.h"

namespace moequant {

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

namespace {
template <typename T>
std::string bracketed(const std::vector<T>& values) {
  std::string s = "[";
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + std::to_string(values[i]);
  return s + "]";
}
}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  return bracketed(shape);
}

std::string shape_string(const std::vector<int>& values) {
  return bracketed(values);
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool starts_with(const std::string& s, const std::string& affix) {
  return s.size() >= affix.size() && s.compare(0, affix.size(), affix) == 0;
}

bool ends_with(const std::string& s, const std::string& affix) {
  return s.size() >= affix.size() && s.compare(s.size() - affix.size(), affix.size(), affix) == 0;
}

}  // namespace moequant
