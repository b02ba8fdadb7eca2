// Post-processors of tokenizer.json ("post_processor"): ByteLevel (offsets only, so no change to
// the ids), TemplateProcessing (special tokens around the sequence) and Sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "json_fields.h"

namespace moequant::tokenizer {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Turns the ids of one sequence into the final ids; special tokens only if add_special_tokens.
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
};

// Builds the post-processor a tokenizer.json declares; throws naming the file, the JSON path and
// the type for a type or field we do not implement, and for a template naming a special token
// that its special_tokens table lacks.
std::unique_ptr<PostProcessor> make_post_processor(const JsonAt& config);

}  // namespace moequant::tokenizer
