// The JSON files of an exported checkpoint: config.json's "quantization_config" and ModelOpt's
// hf_quant_config.json (FORMATS.md, "The exported checkpoint").
#pragma once

#include <nlohmann/json.hpp>

#include <optional>

#include "moequant/core/format.h"
#include "moequant/hf/hf_config.h"

namespace moequant {

// Version string written as the producer.
const char* moequant_version();

// config.json: the source config plus "quantization_config" for `format` (none: unchanged).
// `exclude`: the names of expert modules the user excluded (concrete names, not patterns, so
// that every reader's matching rule finds them), listed after the built-in patterns.
// `passthrough_modules`: exact names of the unquantized linear modules of the source (fp8_block
// lists them in modules_to_not_convert; empty: the built-in patterns are used).
nlohmann::json exported_config(const HfMoeConfig& config, QuantFormat format,
                               const std::vector<std::string>& exclude = {},
                               const std::vector<std::string>& passthrough_modules = {});

// hf_quant_config.json for the ModelOpt formats (fp8, nvfp4); nullopt for the others.
std::optional<nlohmann::json> hf_quant_config(const HfMoeConfig& config, QuantFormat format,
                                              const std::vector<std::string>& exclude = {});

}  // namespace moequant
