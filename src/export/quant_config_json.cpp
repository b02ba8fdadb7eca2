#include "moequant/export/quant_config_json.h"

#include <regex>
#include <set>

#include "moequant/common/error.h"

namespace moequant {

namespace {

nlohmann::json producer() {
  return {{"name", "moequant"}, {"version", moequant_version()}};
}

std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string("\\^$.|?*+()[]{}").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

// "model\.layers\.\d+\.self_attn\.q_proj$": the exact regex of a module with its layer index
// generalized (digits right after "layers.").
std::string family_regex(const std::string& module) {
  static const std::regex layer_index(R"(^model\\\.layers\\\.\d+\\\.)");
  return std::regex_replace(regex_escape(module), layer_index, R"(model\.layers\.\d+\.)",
                            std::regex_constants::format_first_only) +
         "$";
}

// ModelOpt's weights / input_activations descriptors (FORMATS.md).
nlohmann::json modelopt_group(CheckpointScheme s) {
  nlohmann::json group = nlohmann::json::object();
  nlohmann::json w = {{"dynamic", false}, {"num_bits", 8}, {"type", "float"}};
  if (s != CheckpointScheme::kModeloptFp8)
    w = {{"dynamic", false}, {"num_bits", 4}, {"type", "float"}, {"group_size", 16}};
  group["weights"] = w;
  if (has_static_activations(s)) group["input_activations"] = w;
  group["targets"] = {"Linear"};
  return group;
}

bool is_nvfp4(CheckpointScheme s) {
  return s == CheckpointScheme::kModeloptNvfp4 || s == CheckpointScheme::kModeloptW4A16Nvfp4;
}

}  // namespace

const char* moequant_version() {
  return "0.2.0";
}

std::vector<std::string> gptq_negative_regexes(const std::vector<std::string>& unquantized,
                                               const std::vector<std::string>& quantized) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const std::string& m : unquantized) {
    std::string re = family_regex(m);
    const std::regex compiled(re);
    for (const std::string& q : quantized)
      if (std::regex_search(q, compiled, std::regex_constants::match_continuous)) {
        re = regex_escape(m) + "$";  // the family would catch a quantized module: exact only
        break;
      }
    if (seen.insert(re).second) out.push_back("-:" + re);
  }
  return out;
}

nlohmann::json exported_config(const ModelConfig& config, CheckpointScheme scheme,
                               const std::vector<std::string>& unquantized,
                               const std::vector<std::string>& quantized) {
  nlohmann::json out = config.raw;
  out.erase("quantization_config");
  switch (scheme) {
    case CheckpointScheme::kUnquantized:
      break;
    case CheckpointScheme::kModeloptFp8:
    case CheckpointScheme::kModeloptNvfp4:
    case CheckpointScheme::kModeloptW4A16Nvfp4: {
      // The flat form ModelOpt's own exporter writes: vLLM and SGLang read exclusions from
      // "ignore" only; "exclude_modules" carries the same list for older readers.
      nlohmann::json q = {{"quant_method", "modelopt"},
                          {"quant_algo", modelopt_algo(scheme)},
                          {"ignore", unquantized},
                          {"exclude_modules", unquantized},
                          {"config_groups", {{"group_0", modelopt_group(scheme)}}}};
      if (is_nvfp4(scheme)) q["group_size"] = 16;
      q["producer"] = producer();
      out["quantization_config"] = q;
      break;
    }
    case CheckpointScheme::kFp8Dynamic:
    case CheckpointScheme::kFp8Block: {
      // vLLM reads "ignored_layers", transformers "modules_to_not_convert": the same list.
      nlohmann::json q = {{"quant_method", "fp8"}, {"activation_scheme", "dynamic"}};
      if (scheme == CheckpointScheme::kFp8Block) q["weight_block_size"] = {128, 128};
      q["ignored_layers"] = unquantized;
      q["modules_to_not_convert"] = unquantized;
      out["quantization_config"] = q;
      break;
    }
    case CheckpointScheme::kGptqInt4: {
      nlohmann::json dynamic = nlohmann::json::object();
      for (const std::string& key : gptq_negative_regexes(unquantized, quantized))
        dynamic[key] = nlohmann::json::object();
      out["quantization_config"] = {{"quant_method", "gptq"},
                                    {"bits", 4},
                                    {"group_size", 128},
                                    {"desc_act", false},
                                    {"sym", true},
                                    {"lm_head", false},
                                    {"checkpoint_format", "gptq"},
                                    {"modules_in_block_to_quantize", {config.experts_in_block()}},
                                    {"dynamic", dynamic}};
      break;
    }
  }
  return out;
}

std::optional<nlohmann::json> hf_quant_config(CheckpointScheme scheme,
                                              const std::vector<std::string>& unquantized) {
  if (!is_modelopt(scheme)) return std::nullopt;
  nlohmann::json q = {{"quant_algo", modelopt_algo(scheme)}, {"kv_cache_quant_algo", nullptr}};
  if (is_nvfp4(scheme)) q["group_size"] = 16;
  q["exclude_modules"] = unquantized;
  return nlohmann::json{{"producer", producer()}, {"quantization", q}};
}

}  // namespace moequant
