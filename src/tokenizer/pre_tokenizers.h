// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): Split, ByteLevel, Metaspace and Sequence,
// each cutting pieces of normalized text into smaller pieces as its Hugging Face namesake does.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "json_fields.h"

namespace moequant::tokenizer {

// A piece of normalized text on its way to the model.
struct Piece {
  std::string text;
  // Whether the piece starts at offset 0 of the original text (Metaspace's prepend_scheme
  // "first" prepends only there).
  bool at_origin = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their pre-tokenized pieces, in order, none empty.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// Builds the pre-tokenizer a tokenizer.json declares; throws naming the file, the JSON path and the
// type for a type, behavior or field we do not implement.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonAt& config);

}  // namespace moequant::tokenizer
