// A Hugging Face tokenizer.json reader that gives the ids `tokenizers` gives
// (Tokenizer.from_file(path).encode(text).ids): byte-level BPE (Qwen2/Qwen3 and most current
// models) and SentencePiece-style BPE with byte fallback (Mixtral, Llama 2).
//
// What a file declares and this reader does not implement (a model type, normalizer,
// pre-tokenizer or post-processor, a field or flag value) is refused when loading, naming the file
// and the component, rather than tokenized differently. No torch here.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moequant::tokenizer {

class Tokenizer {
 public:
  // Reads a tokenizer.json; throws moequant::Error naming `path` (and the JSON entry at fault).
  static Tokenizer from_file(const std::string& path);
  // The same from the file's text; `source` names it in errors.
  static Tokenizer from_json(std::string_view json_text, const std::string& source);

  // The token ids of `text`: added tokens split out first, then normalizer, pre-tokenizer and BPE,
  // then the post-processor (its special tokens only if add_special_tokens). Throws naming
  // `source` and the byte offset when `text` is not valid UTF-8. Safe to call from several
  // threads at once.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true,
                              std::string_view source = "text") const;

  // The id of a token of the model's vocab or of the added tokens.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The model's vocab plus the added tokens that are not in it.
  size_t vocab_size() const;
  // The path (or source name) the tokenizer was read from.
  const std::string& source() const;

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;  // immutable but for the model's word cache; copies share it
};

}  // namespace moequant::tokenizer
