// The JSON files of an exported checkpoint (docs/formats.md, "The exported checkpoint"):
// config.json's "quantization_config", which vLLM and SGLang read first, and ModelOpt's
// hf_quant_config.json, which TensorRT-LLM reads; each complete on its own.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "moequant/export/checkpoint_scheme.h"
#include "moequant/model/model_config.h"

namespace moequant {

// Version string written as the producer.
const char* moequant_version();

// config.json: the source config plus "quantization_config" for `scheme` (kUnquantized: the
// source's config unchanged, an old quantization_config removed). `unquantized_modules` names
// every linear module left unquantized, in the source's names (ExportPlan::unquantized_modules):
// ModelOpt's flat form lists it under "ignore" (and "exclude_modules" for older readers), fp8
// under "ignored_layers" and "modules_to_not_convert", GPTQ as negative "dynamic" regexes.
nlohmann::json exported_config(const ModelConfig& config, const CheckpointScheme& scheme,
                               const std::vector<std::string>& unquantized_modules,
                               const std::vector<std::string>& quantized_modules);

// hf_quant_config.json for the ModelOpt schemes; nullopt for the others.
std::optional<nlohmann::json> hf_quant_config(const CheckpointScheme& scheme,
                                              const std::vector<std::string>& unquantized_modules);

// GPTQModel "dynamic" negative-match keys ("-:<regex>", applied with re.match) covering exactly
// `unquantized`: one regex per family of modules (the layer index generalized) where no module of
// `quantized` matches it, else one per module.
std::vector<std::string> gptq_negative_regexes(const std::vector<std::string>& unquantized,
                                               const std::vector<std::string>& quantized);

}  // namespace moequant
