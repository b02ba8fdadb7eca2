// --exclude patterns must each name something: a pattern that matches no expert projection is a
// typo, and ignoring it would quantize what the user meant to keep.
#pragma once

#include <string>
#include <vector>

#include "moequant/model/model_config.h"

namespace moequant {

// Throws naming the first pattern (glob, or re:REGEX) that matches no expert projection module
// of `config` ("model.layers.3.mlp.experts.5.gate_proj"), with the closest module names.
void check_exclude_patterns(const ModelConfig& config, const std::vector<std::string>& patterns);

}  // namespace moequant
