// --exclude patterns must each name something: a pattern that matches no quantized module is a
// typo, and ignoring it would quantize what the user meant to keep.
#pragma once

#include <string>
#include <vector>

#include "moequant/model/model_config.h"

namespace moequant {

// Throws naming the first pattern (glob, or re:REGEX) that matches no module the export quantizes
// (every expert projection, "model.layers.3.mlp.experts.5.gate_proj"; with `dense`, every dense
// linear of --quantize all-linear too), with the closest module names.
void check_exclude_patterns(const ModelConfig& config, const std::vector<std::string>& patterns,
                            bool dense = false);

}  // namespace moequant
