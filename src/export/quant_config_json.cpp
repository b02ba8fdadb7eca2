#include "moequant/export/quant_config_json.h"

namespace moequant {

namespace {

nlohmann::json producer() {
  return {{"name", "moequant"}, {"version", moequant_version()}};
}

// Regex for GPTQModel's "dynamic" negative matches (applied with re.match, anchored at the
// start): a module name or a glob pattern, with dots escaped.
std::string glob_to_regex(const std::string& glob) {
  std::string re;
  for (char c : glob) {
    if (c == '*')
      re += ".*";
    else if (c == '.')
      re += "\\.";
    else
      re += c;
  }
  return re;
}

const char* modelopt_algo(QuantFormat f) {
  return f == QuantFormat::kNVFP4 ? "NVFP4" : "FP8";
}

}  // namespace

const char* moequant_version() {
  return "0.1.0";
}

namespace {
std::vector<std::string> excluded_modules(const HfMoeConfig& config,
                                          const std::vector<std::string>& exclude) {
  auto out = config.unquantized_module_patterns();
  out.insert(out.end(), exclude.begin(), exclude.end());
  return out;
}
// transformers matches modules_to_not_convert by name, not by glob: list every unquantized
// linear by its exact name when the source's module names are known.
std::vector<std::string> not_converted(const HfMoeConfig& config,
                                       const std::vector<std::string>& exclude,
                                       const std::vector<std::string>& passthrough_modules) {
  if (passthrough_modules.empty()) return excluded_modules(config, exclude);
  std::vector<std::string> out = passthrough_modules;
  out.insert(out.end(), exclude.begin(), exclude.end());
  return out;
}
}  // namespace

nlohmann::json exported_config(const HfMoeConfig& config, QuantFormat format,
                               const std::vector<std::string>& exclude,
                               const std::vector<std::string>& passthrough_modules) {
  nlohmann::json out = config.raw;
  const auto excluded = excluded_modules(config, exclude);
  switch (format) {
    case QuantFormat::kNone:
      break;
    case QuantFormat::kFP8:
    case QuantFormat::kNVFP4: {
      nlohmann::json q = {{"quant_method", "modelopt"},
                          {"quant_algo", modelopt_algo(format)},
                          {"kv_cache_quant_algo", nullptr},
                          {"exclude_modules", excluded},
                          {"producer", producer()}};
      if (format == QuantFormat::kNVFP4) q["group_size"] = 16;
      out["quantization_config"] = q;
      break;
    }
    case QuantFormat::kFP8Block:
      out["quantization_config"] = {
          {"quant_method", "fp8"},
          {"activation_scheme", "dynamic"},
          {"weight_block_size", {128, 128}},
          {"modules_to_not_convert", not_converted(config, exclude, passthrough_modules)}};
      break;
    case QuantFormat::kINT4: {
      nlohmann::json dynamic = nlohmann::json::object();
      for (const auto& p : excluded) dynamic["-:" + glob_to_regex(p)] = nlohmann::json::object();
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

std::optional<nlohmann::json> hf_quant_config(const HfMoeConfig& config, QuantFormat format,
                                              const std::vector<std::string>& exclude) {
  if (format != QuantFormat::kFP8 && format != QuantFormat::kNVFP4) return std::nullopt;
  nlohmann::json q = {{"quant_algo", modelopt_algo(format)},
                      {"kv_cache_quant_algo", nullptr},
                      {"exclude_modules", excluded_modules(config, exclude)}};
  q["group_size"] = format == QuantFormat::kNVFP4 ? nlohmann::json(16) : nlohmann::json(nullptr);
  return nlohmann::json{{"producer", producer()}, {"quantization", q}};
}

}  // namespace moequant
