#include "onig_reference.h"

#include <oniguruma.h>

#include <cstring>
#include <stdexcept>

#include "utf8.h"

namespace moequant::tokenizer::test {

OnigReference::OnigReference(const char* pattern) {
  static const bool initialized = [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    return onig_initialize(encodings, 1) == ONIG_NORMAL;
  }();
  if (!initialized) throw std::runtime_error("onig_initialize failed");
  OnigErrorInfo info;
  OnigRegex regex = nullptr;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern);
  if (onig_new(&regex, p, p + std::strlen(pattern), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
               ONIG_SYNTAX_ONIGURUMA, &info) != ONIG_NORMAL) {
    throw std::runtime_error(std::string("Oniguruma does not compile ") + pattern);
  }
  regex_ = regex;
}

OnigReference::~OnigReference() {
  onig_free(static_cast<OnigRegex>(regex_));
}

std::vector<std::pair<size_t, size_t>> OnigReference::find_all(const std::string& text) const {
  std::vector<std::pair<size_t, size_t>> out;
  OnigRegion* region = onig_region_new();
  const auto* begin = reinterpret_cast<const OnigUChar*>(text.data());
  const auto* end = begin + text.size();
  size_t start = 0, last_end = 0;
  bool have_last = false;
  while (start <= text.size()) {
    onig_region_clear(region);
    if (onig_search(static_cast<OnigRegex>(regex_), begin, end, begin + start, end, region,
                    ONIG_OPTION_NONE) < 0) {
      break;
    }
    const size_t b = region->beg[0], e = region->end[0];
    if (b == e && have_last && last_end == e) {
      if (start >= text.size()) break;
      start += utf8_length(static_cast<unsigned char>(text[start]));
      continue;
    }
    out.emplace_back(b, e);
    have_last = true;
    last_end = start = e;
  }
  onig_region_free(region, 1);
  return out;
}

}  // namespace moequant::tokenizer::test
