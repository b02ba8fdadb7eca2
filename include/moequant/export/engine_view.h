// How serving engines read an exported checkpoint's quantization config (docs/formats.md, "The
// exported checkpoint"), written after their loaders: which key holds the exclusions in each
// form, and how a module is matched against them. The exporter checks its own plan with it
// before publishing; `moequant verify` and `inspect` read folders with it.
//   - ModelOpt flat form (config.json, quant_method "modelopt"): "ignore" only (vLLM, SGLang);
//     nested form (hf_quant_config.json): quantization.exclude_modules (TensorRT-LLM).
//     A module is excluded by exact name, by being a substring of an entry (vLLM's rule for
//     fused MoE prefixes) or by fnmatch (vLLM is_layer_excluded).
//   - fp8 (vLLM and transformers): "ignored_layers" (vLLM, same matching) and
//     "modules_to_not_convert" (transformers: an entry that is a substring of the module).
//   - gptq: "dynamic" keys "-:<regex>" matched with re.match at the start of the module name.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "moequant/core/format.h"

namespace moequant {

struct EngineView {
  std::string method;  // "modelopt", "fp8", "gptq"; "mxfp4" (a GPT-OSS release, a source);
                       // "" when the folder is not quantized
  std::string algo;    // ModelOpt quant_algo
  QuantFormat format = QuantFormat::kNone;
  bool static_activations = false;           // input_scale required beside every quantized weight
  std::vector<std::string> vllm_exclusions;  // ignore / ignored_layers / exclude_modules
  std::vector<std::string> transformers_exclusions;  // modules_to_not_convert (fp8)
  std::vector<std::string> negative_regexes;         // gptq dynamic "-:" keys, prefix stripped
  // gptq modules_in_block_to_quantize: a linear is quantized only when an entry is a substring
  // of its name (empty: no such rule)
  std::vector<std::string> gptq_block_modules;
  // An FP8 KV cache declared (ModelOpt's kv_cache_scheme / kv_cache_quant_algo "FP8").
  bool kv_cache_fp8 = false;
};

// Reads config.json's "quantization_config" (absent or null: an unquantized view). Errors name
// `file` and the key: an unknown method or algo, a missing or mistyped exclusion list.
EngineView engine_view_of(const nlohmann::json& config, const std::string& file);

// The same for hf_quant_config.json's nested form ({"quantization": {"quant_algo", ...}}).
EngineView engine_view_of_hf_quant_config(const nlohmann::json& hf_quant_config,
                                          const std::string& file);

// vLLM's matching of a module name against an exclusion list: exact name, the module a substring
// of an entry, or fnmatch(module, entry).
bool vllm_excludes(const std::string& module, const std::vector<std::string>& entries);

// How an engine treats a module: quantized unless some exclusion rule of the view matches it.
// `excluded_by_all` is true when every reader of the view excludes it, `excluded_by_any` when at
// least one does: a module stored unquantized must be excluded by all, a quantized one by none.
struct ModuleVerdict {
  bool excluded_by_all = false;
  bool excluded_by_any = false;
};
ModuleVerdict engine_verdict(const EngineView& view, const std::string& module);

// One line per module the engines would misread: a quantized module an exclusion matches, or an
// unquantized one that some reader would treat as quantized. `modules` pairs names with whether
// their bytes on disk are quantized.
std::vector<std::string> engine_mismatches(
    const EngineView& view, const std::vector<std::pair<std::string, bool>>& modules);

// An exported folder read the way an engine reads it: config.json's view (and
// hf_quant_config.json's, which must agree), every linear module found in the folder's tensors
// with whether it is stored quantized and whether the engines treat it so, and every problem:
// a module the engines would misread, a static-activation checkpoint missing an input_scale (or
// holding a zero or non-finite one), a dynamic one carrying input scales, configs that disagree,
// linears an engine fuses (q/k/v, gate/up, MLA's q_a/kv_a) with different scalar scales, KV-cache
// scales present but not declared (or declared but absent, or not a valid float32 scalar).
struct ModuleStatus {
  std::string name;
  bool stored_quantized = false;
  bool engine_quantized = false;  // no reader of the config excludes it
};
struct FolderEngineCheck {
  EngineView view;
  std::vector<ModuleStatus> modules;
  std::vector<std::string> problems;
};
FolderEngineCheck check_folder_engine_view(const std::string& dir);

}  // namespace moequant
