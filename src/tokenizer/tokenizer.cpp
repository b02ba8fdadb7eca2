// Tokenizer: the encode pipeline of tokenizers' TokenizerImpl::encode for one sequence.
#include "moequant/tokenizer/tokenizer.h"

#include "moequant/common/error.h"
#include "moequant/common/regular_file.h"
#include "tokenizer_json.h"
#include "utf8.h"

namespace moequant::tokenizer {

struct Tokenizer::Impl {
  std::string source;
  TokenizerParts parts;
};

Tokenizer Tokenizer::from_json(std::string_view json_text, const std::string& source) {
  auto impl = std::make_shared<Impl>();
  impl->source = source;
  impl->parts = load_tokenizer_json(json_text, source);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  return from_json(read_regular_file(path, kMaxTokenizerFileBytes), path);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens,
                                       std::string_view source) const {
  check_utf8(text, source);
  const TokenizerParts& p = impl_->parts;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<Piece> pieces;
  // 1. Added tokens that match the raw text; 2. the normalizer on each piece between them, then
  // added tokens that match normalized text; 3. pre-tokenizer and model on what is left.
  for (const auto& raw : p.added->split_raw(text)) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    std::string normalized(text.substr(raw.begin, raw.end - raw.begin));
    if (p.normalizer) normalized = p.normalizer->normalize(std::move(normalized));
    for (const auto& part : p.added->split_normalized(normalized)) {
      if (part.id >= 0) {
        ids.push_back(part.id);
        continue;
      }
      pieces.clear();
      pieces.push_back({normalized.substr(part.begin, part.end - part.begin),
                        raw.begin == 0 && part.begin == 0});
      if (p.pre_tokenizer) p.pre_tokenizer->pre_tokenize(pieces);
      for (const Piece& piece : pieces) p.model->tokenize(piece.text, ids);
    }
  }
  if (p.post_processor) p.post_processor->process(ids, add_special_tokens);
  return ids;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto id = impl_->parts.added->token_to_id(token)) return id;
  return impl_->parts.model->token_to_id(token);
}

size_t Tokenizer::vocab_size() const {
  return impl_->parts.model->vocab_size() + impl_->parts.added->count_outside_model();
}

const std::string& Tokenizer::source() const {
  return impl_->source;
}

}  // namespace moequant::tokenizer
