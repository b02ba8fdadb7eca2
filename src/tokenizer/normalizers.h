// Normalizers of tokenizer.json ("normalizer"): Unicode normal forms (utf8proc), Prepend, Replace
// and Sequence, each equal to its Hugging Face `tokenizers` namesake on valid UTF-8.
#pragma once

#include <memory>
#include <string>

#include "json_fields.h"

namespace moequant::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `text` normalized (valid UTF-8 in, valid UTF-8 out).
  virtual std::string normalize(std::string text) const = 0;
};

// Builds the normalizer a tokenizer.json declares; throws naming the file, the JSON path and the
// type for a type or field we do not implement.
std::unique_ptr<Normalizer> make_normalizer(const JsonAt& config);

}  // namespace moequant::tokenizer
