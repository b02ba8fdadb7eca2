// Reading a tokenizer.json into the parts of a tokenizer: which components it declares, with
// which settings, each checked against what we implement.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "added_vocabulary.h"
#include "bpe_model.h"
#include "normalizers.h"
#include "post_processors.h"
#include "pre_tokenizers.h"

namespace moequant::tokenizer {

struct TokenizerParts {
  std::unique_ptr<Normalizer> normalizer;       // may be null
  std::unique_ptr<PreTokenizer> pre_tokenizer;  // may be null
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<AddedVocabulary> added;
  std::unique_ptr<PostProcessor> post_processor;  // may be null
};

// Parses `text` (the contents of a tokenizer.json); `source` names it in every error.
TokenizerParts load_tokenizer_json(std::string_view text, const std::string& source);

}  // namespace moequant::tokenizer
