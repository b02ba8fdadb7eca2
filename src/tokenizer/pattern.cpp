#include "pattern.h"

#include "moequant/common/error.h"

namespace moequant::tokenizer {

Pattern::Pattern(const JsonAt& config) {
  config.expect_only({"String", "Regex"});
  MQ_CHECK(config.value().size() == 1, config.where(), ": expected one of String or Regex");
  if (const auto literal = config.find("String")) {
    literal_ = literal->string();
    MQ_CHECK(!literal_.empty(), literal->where(), ": empty pattern is not supported");
    return;
  }
  const JsonAt regex = config.at("Regex");
  regex_ = std::make_unique<Regex>(regex.string(), regex.where());
}

}  // namespace moequant::tokenizer
