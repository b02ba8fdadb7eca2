// Oniguruma itself (libonig), kept out of the gtest sources: oniguruma.h and the POSIX <regex.h>
// that gtest includes both define struct re_registers.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace moequant::tokenizer::test {

class OnigReference {
 public:
  // Compiles `pattern` as `tokenizers` does (Oniguruma syntax, no options, UTF-8); throws on error.
  explicit OnigReference(const char* pattern);
  ~OnigReference();
  OnigReference(const OnigReference&) = delete;
  OnigReference& operator=(const OnigReference&) = delete;

  // The onig crate's find_iter: matches left to right, an empty match right after the previous
  // match skipped by one character.
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& text) const;

 private:
  void* regex_ = nullptr;
};

}  // namespace moequant::tokenizer::test
