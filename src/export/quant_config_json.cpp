#include "moequant/export/quant_config_json.h"

#include <algorithm>
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

// ModelOpt's weights / input_activations descriptors (docs/formats.md).
nlohmann::json modelopt_group(const CheckpointScheme& s) {
  const FormatDescriptor& f = s.descriptor();
  nlohmann::json w = {{"dynamic", false}, {"num_bits", f.bits}, {"type", "float"}};
  if (f.group_size > 0) w["group_size"] = f.group_size;
  nlohmann::json group = nlohmann::json::object();
  group["weights"] = w;
  if (s.static_activations) group["input_activations"] = w;
  group["targets"] = {"Linear"};
  return group;
}

// GPTQ's modules_in_block_to_quantize: vLLM quantizes a linear only when one entry is a
// substring of its name (gptq_utils.py, get_linear_quant_method), and names fused linears by
// their fused name (qkv_proj, gate_up_proj), so an entry is the parent of each quantized module
// inside its block ("self_attn", "mlp.shared_expert", the experts' prefix); the unquantized
// modules under the same parent are taken out by the "dynamic" negative keys.
std::vector<std::string> modules_in_block(const ModelConfig& config,
                                          const std::vector<std::string>& quantized) {
  const std::string experts = config.experts_in_block();
  std::vector<std::string> out;
  auto add = [&](const std::string& entry) {
    if (std::find(out.begin(), out.end(), entry) == out.end()) out.push_back(entry);
  };
  for (const std::string& m : quantized) {
    const TensorPlace place = config.place_of(m);
    if (place.kind != TensorPlace::kLayer) continue;
    const std::string prefix = config.layer_prefix(place.layer);
    if (m.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rel = m.substr(prefix.size());
    if (rel.compare(0, experts.size(), experts) == 0)
      add(experts);
    else if (rel.find('.') != std::string::npos)
      add(rel.substr(0, rel.rfind('.')));
  }
  if (out.empty()) out.push_back(experts);
  return out;
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

nlohmann::json exported_config(const ModelConfig& config, const CheckpointScheme& scheme,
                               const std::vector<std::string>& unquantized,
                               const std::vector<std::string>& quantized) {
  nlohmann::json out = config.raw;
  out.erase("quantization_config");
  const FormatDescriptor& f = scheme.descriptor();
  const std::string& method = scheme.names().quant_method;
  if (method == "modelopt") {
    // The flat form ModelOpt's own exporter writes: vLLM and SGLang read exclusions from
    // "ignore" only; "exclude_modules" carries the same list for older readers.
    nlohmann::json q = {{"quant_method", "modelopt"},
                        {"quant_algo", scheme.names().modelopt_algo},
                        {"ignore", unquantized},
                        {"exclude_modules", unquantized},
                        {"config_groups", {{"group_0", modelopt_group(scheme)}}}};
    if (f.group_size > 0) q["group_size"] = f.group_size;
    if (scheme.kv_cache_fp8) {
      // vLLM's and SGLang's flat branches read kv_cache_scheme; SGLang's FP4 config also a
      // top-level kv_cache_quant_algo (docs/formats.md, "KV-cache scales").
      q["kv_cache_scheme"] = {{"dynamic", false}, {"num_bits", 8}, {"type", "float"}};
      q["kv_cache_quant_algo"] = "FP8";
    }
    q["producer"] = producer();
    out["quantization_config"] = q;
  } else if (method == "fp8") {
    // vLLM reads "ignored_layers", transformers "modules_to_not_convert": the same list.
    nlohmann::json q = {{"quant_method", "fp8"}, {"activation_scheme", "dynamic"}};
    if (!f.block_size.empty()) q["weight_block_size"] = f.block_size;
    q["ignored_layers"] = unquantized;
    q["modules_to_not_convert"] = unquantized;
    out["quantization_config"] = q;
  } else if (method == "gptq") {
    nlohmann::json dynamic = nlohmann::json::object();
    for (const std::string& key : gptq_negative_regexes(unquantized, quantized))
      dynamic[key] = nlohmann::json::object();
    out["quantization_config"] = {
        {"quant_method", "gptq"},
        {"bits", f.bits},
        {"group_size", f.group_size},
        {"desc_act", false},
        {"sym", true},
        {"lm_head", false},
        {"checkpoint_format", "gptq"},
        {"modules_in_block_to_quantize", modules_in_block(config, quantized)},
        {"dynamic", dynamic}};
  } else {
    MQ_CHECK(method.empty(), "internal: no config writer for quant_method '", method, "'");
  }
  return out;
}

std::optional<nlohmann::json> hf_quant_config(const CheckpointScheme& scheme,
                                              const std::vector<std::string>& unquantized) {
  if (!scheme.is_modelopt()) return std::nullopt;
  nlohmann::json q = {{"quant_algo", scheme.names().modelopt_algo},
                      {"kv_cache_quant_algo",
                       scheme.kv_cache_fp8 ? nlohmann::json("FP8") : nlohmann::json(nullptr)}};
  if (scheme.descriptor().group_size > 0) q["group_size"] = scheme.descriptor().group_size;
  q["exclude_modules"] = unquantized;
  return nlohmann::json{{"producer", producer()}, {"quantization", q}};
}

}  // namespace moequant
