#include "moequant/export/engine_view.h"

#include <fnmatch.h>

#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "moequant/common/error.h"
#include "moequant/common/limited_json.h"
#include "moequant/common/regular_file.h"
#include "moequant/common/strings.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/model/model_config.h"

namespace moequant {

namespace {

std::vector<std::string> string_list(const nlohmann::json& q, const char* key,
                                     const std::string& file, bool required) {
  std::vector<std::string> out;
  if (!q.contains(key) || q[key].is_null()) {
    MQ_CHECK(!required, file, ": quantization config has no '", key,
             "' (the list serving engines read the unquantized modules from)");
    return out;
  }
  MQ_CHECK(q[key].is_array(), file, ": '", key, "' must be a list of module names");
  for (const auto& v : q[key]) {
    MQ_CHECK(v.is_string(), file, ": '", key, "' must hold strings, found ", v.dump());
    out.push_back(v.get<std::string>());
  }
  return out;
}

EngineView modelopt_view(const std::string& algo, std::vector<std::string> exclusions,
                         const std::string& file) {
  EngineView v;
  v.method = "modelopt";
  v.algo = algo;
  std::vector<std::string> known;
  for (const FormatDescriptor* f : all_formats())
    for (const SchemeNames* names : {&f->weights_only, &f->with_activations}) {
      if (names->quant_method != "modelopt") continue;
      known.push_back(names->modelopt_algo);
      if (names->modelopt_algo != algo) continue;
      v.format = f->id;
      v.static_activations = names == &f->with_activations;
      v.vllm_exclusions = std::move(exclusions);
      return v;
    }
  MQ_THROW(file, ": unsupported modelopt quant_algo '", algo, "' (supported: ", join(known), ")");
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

EngineView engine_view_of(const nlohmann::json& config, const std::string& file) {
  if (!config.contains("quantization_config") || config["quantization_config"].is_null())
    return EngineView{};
  const nlohmann::json& q = config["quantization_config"];
  MQ_CHECK(q.is_object() && q.contains("quant_method") && q["quant_method"].is_string(), file,
           ": quantization_config has no string 'quant_method'");
  const std::string method = q["quant_method"].get<std::string>();
  if (method == "modelopt") {
    MQ_CHECK(q.contains("quant_algo") && q["quant_algo"].is_string(), file,
             ": modelopt quantization_config has no string 'quant_algo'");
    EngineView v = modelopt_view(q["quant_algo"].get<std::string>(),
                                 string_list(q, "ignore", file, true), file);
    // vLLM's and SGLang's flat branches: kv_cache_scheme {type float, num_bits 8}; SGLang's FP4
    // config also a top-level kv_cache_quant_algo.
    if (q.contains("kv_cache_scheme") && q["kv_cache_scheme"].is_object()) {
      const nlohmann::json& kv = q["kv_cache_scheme"];
      v.kv_cache_fp8 = kv.value("type", "") == "float" && kv.value("num_bits", 0) == 8;
    }
    if (q.contains("kv_cache_quant_algo") && q["kv_cache_quant_algo"] == "FP8")
      v.kv_cache_fp8 = true;
    return v;
  }
  if (method == "fp8") {
    EngineView v;
    v.method = "fp8";
    v.format = q.contains("weight_block_size") ? QuantFormat::kFP8Block : QuantFormat::kFP8;
    // (fp8 and fp8_block share quant_method "fp8": the block size tells them apart.)
    MQ_CHECK(!q.contains("activation_scheme") || q["activation_scheme"] == "dynamic", file,
             ": fp8 activation_scheme ", q["activation_scheme"].dump(),
             " is not one moequant writes (dynamic)");
    v.vllm_exclusions = string_list(q, "ignored_layers", file, true);
    v.transformers_exclusions = string_list(q, "modules_to_not_convert", file, true);
    return v;
  }
  if (method == "gptq") {
    MQ_CHECK(!q.contains("bits") || q["bits"] == 4, file, ": only 4-bit gptq is supported");
    EngineView v;
    v.method = "gptq";
    v.format = QuantFormat::kINT4;
    if (q.contains("dynamic") && q["dynamic"].is_object())
      for (const auto& item : q["dynamic"].items())
        if (item.key().rfind("-:", 0) == 0) v.negative_regexes.push_back(item.key().substr(2));
    if (q.contains("modules_in_block_to_quantize") && q["modules_in_block_to_quantize"].is_array())
      for (const auto& e : q["modules_in_block_to_quantize"]) {
        if (e.is_string()) v.gptq_block_modules.push_back(e.get<std::string>());
        if (e.is_array())  // GPTQModel's list of lists: vLLM flattens it
          for (const auto& inner : e)
            if (inner.is_string()) v.gptq_block_modules.push_back(inner.get<std::string>());
      }
    return v;
  }
  if (method == "mxfp4") {  // a GPT-OSS release: a source moequant reads, never writes
    EngineView v;
    v.method = "mxfp4";
    v.transformers_exclusions = string_list(q, "modules_to_not_convert", file, true);
    return v;
  }
  MQ_THROW(file, ": unsupported quant_method '", method,
           "' (supported: modelopt, fp8, gptq; mxfp4 as a source)");
}

EngineView engine_view_of_hf_quant_config(const nlohmann::json& j, const std::string& file) {
  MQ_CHECK(j.is_object() && j.contains("quantization") && j["quantization"].is_object(), file,
           ": expected {\"quantization\": {...}}");
  const nlohmann::json& q = j["quantization"];
  MQ_CHECK(q.contains("quant_algo") && q["quant_algo"].is_string(), file,
           ": quantization has no string 'quant_algo'");
  EngineView v = modelopt_view(q["quant_algo"].get<std::string>(),
                               string_list(q, "exclude_modules", file, true), file);
  v.kv_cache_fp8 = q.contains("kv_cache_quant_algo") && q["kv_cache_quant_algo"] == "FP8";
  return v;
}

bool vllm_excludes(const std::string& module, const std::vector<std::string>& entries) {
  for (const std::string& e : entries)
    if (e == module || contains(e, module) || fnmatch(e.c_str(), module.c_str(), 0) == 0)
      return true;
  return false;
}

ModuleVerdict engine_verdict(const EngineView& view, const std::string& module) {
  if (view.method.empty()) return {true, true};  // nothing is quantized
  std::vector<bool> readers;
  if (view.method == "gptq") {
    bool hit = false;
    for (const std::string& re : view.negative_regexes)
      hit =
          hit || std::regex_search(module, std::regex(re), std::regex_constants::match_continuous);
    if (!view.gptq_block_modules.empty()) {
      bool in_block = false;
      for (const std::string& e : view.gptq_block_modules)
        in_block = in_block || contains(module, e);
      hit = hit || !in_block;
    }
    readers.push_back(hit);
  } else {
    readers.push_back(vllm_excludes(module, view.vllm_exclusions));
    if (view.method == "fp8") {
      bool hit = false;
      for (const std::string& e : view.transformers_exclusions) hit = hit || contains(module, e);
      readers.push_back(hit);
    }
  }
  ModuleVerdict v{true, false};
  for (bool r : readers) {
    v.excluded_by_all = v.excluded_by_all && r;
    v.excluded_by_any = v.excluded_by_any || r;
  }
  return v;
}

std::vector<std::string> engine_mismatches(
    const EngineView& view, const std::vector<std::pair<std::string, bool>>& modules) {
  std::vector<std::string> out;
  for (const auto& [module, quantized] : modules) {
    const ModuleVerdict v = engine_verdict(view, module);
    if (quantized && v.excluded_by_any)
      out.push_back("module '" + module +
                    "' is stored quantized but the config's exclusion list matches it: an "
                    "engine would load its quantized bytes as plain weights");
    if (!quantized && !v.excluded_by_all)
      out.push_back("module '" + module +
                    "' is stored unquantized but not every exclusion list of the config "
                    "matches it: an engine would load its plain bytes as quantized ones");
  }
  return out;
}

namespace {

nlohmann::json read_json(const std::string& path) {
  MQ_CHECK(path_exists(path), "cannot read '", path, "': it does not exist");
  return read_json_file(path, kMaxConfigFileBytes);
}

// Every linear module the folder's tensors show, with whether it is stored quantized (a scale or
// GPTQ's qweight beside it); lm_head even when tied; and each MoE layer's fused prefix (the name
// vLLM asks about) when all of its experts are stored alike.
std::vector<std::pair<std::string, bool>> stored_modules(const io::CheckpointFolder& folder,
                                                         const nlohmann::json& config) {
  std::vector<std::pair<std::string, bool>> out;
  std::set<std::string> seen;
  for (const std::string& name : folder.names()) {
    // A module's codes: a 2-D "weight" (no embedding) or a format's own codes tensor (qweight).
    const size_t dot = name.rfind('.');
    if (dot == std::string::npos) continue;
    const std::string base = name.substr(0, dot), suffix = name.substr(dot + 1);
    const bool codes = suffix == "weight"
                           ? folder.info(name).shape.size() == 2 && !ModelConfig::is_embedding(name)
                           : suffix == "qweight";
    if (!codes) continue;
    // Quantized: any tensor some format stores beside its codes (a scale, qzeros, ...).
    bool quantized = suffix == "qweight";
    for (const std::string& s : all_stored_suffixes())
      quantized = quantized || (s != "weight" && s != "input_scale" && folder.has(base + "." + s));
    if (seen.insert(base).second) out.push_back({base, quantized});
  }
  for (const std::string& m : ModelConfig::implicit_linear_modules())
    if (seen.insert(m).second) out.push_back({m, false});
  try {
    const ModelConfig c = parse_model_config(config, "", "config.json", ConfigOf::kExport);
    std::map<std::string, std::set<bool>> prefixes;
    for (const auto& [module, quantized] : out) {
      int layer = -1;
      if (c.is_routed_expert_tensor(module + ".weight", &layer))
        prefixes[c.experts_prefix(layer)].insert(quantized);
    }
    for (const auto& [prefix, states] : prefixes)
      if (states.size() == 1) out.push_back({prefix, *states.begin()});
  } catch (const Error&) {
    // not a config moequant reads: the per-module check stands alone
  }
  return out;
}

float scalar_f32(const io::CheckpointFolder& folder, const std::string& name) {
  const io::TensorInfo& info = folder.info(name);
  if (info.dtype != DType::kF32 || info.numel() != 1) return NAN;
  float v;
  std::memcpy(&v, folder.data(name), 4);
  return v;
}

// The fused linear an engine builds a module into ("parent|qkv" for q_proj, k_proj, v_proj; the
// same for gate/up of an MLP or expert, MLA's q_a/kv_a), or "" for a module loaded alone.
std::string fusion_key(const std::string& module) {
  const size_t dot = module.rfind('.');
  if (dot == std::string::npos) return "";
  const std::string parent = module.substr(0, dot), leaf = module.substr(dot + 1);
  if (leaf == "q_proj" || leaf == "k_proj" || leaf == "v_proj") return parent + "|qkv";
  if (leaf == "gate_proj" || leaf == "up_proj" || leaf == "w1" || leaf == "w3")
    return parent + "|gate_up";
  if (leaf == "q_a_proj" || leaf == "kv_a_proj_with_mqa") return parent + "|qkv_a";
  return "";
}

// Fused members must carry equal scalar scales: the engines keep one (vLLM takes the max of
// fp8 weight scales and requantizes; for nvfp4's weight_scale_2 and every input_scale it keeps
// one value for all shards).
void check_fused_scalars(const io::CheckpointFolder& folder,
                         const std::vector<std::pair<std::string, bool>>& modules,
                         std::vector<std::string>& problems) {
  std::map<std::string, std::vector<std::string>> groups;
  for (const auto& [name, quantized] : modules)
    if (quantized && !fusion_key(name).empty()) groups[fusion_key(name)].push_back(name);
  for (const auto& [key, members] : groups) {
    if (members.size() < 2) continue;
    for (const char* suffix : {"weight_scale", "weight_scale_2", "input_scale"}) {
      const std::string first = members[0] + "." + suffix;
      if (!folder.has(first) || folder.info(first).numel() != 1) continue;
      for (size_t i = 1; i < members.size(); ++i) {
        const std::string other = members[i] + "." + suffix;
        if (!folder.has(other) || folder.info(other).nbytes() != folder.info(first).nbytes() ||
            std::memcmp(folder.data(other), folder.data(first), folder.info(first).nbytes()) != 0)
          problems.push_back("'" + first + "' and '" + other +
                             "' differ, but the engines load the two as one fused linear with "
                             "one scale");
      }
    }
  }
}

// KV-cache scales: present exactly when the config declares an FP8 KV cache, in pairs, each a
// valid float32 scalar.
void check_kv_scales(const io::CheckpointFolder& folder, bool declared,
                     std::vector<std::string>& problems) {
  size_t keys = 0, values = 0;
  for (const std::string& name : folder.names()) {
    const bool k = ends_with(name, ".k_scale"), v = ends_with(name, ".v_scale");
    if (!k && !v) continue;
    (k ? keys : values) += 1;
    const float s = scalar_f32(folder, name);
    if (!(std::isfinite(s) && s > 0))
      problems.push_back("'" + name + "' must be a finite float32 scalar > 0");
    if (!declared)
      problems.push_back("'" + name +
                         "' is present but the config declares no FP8 KV cache "
                         "(kv_cache_quant_algo): engines would ignore it");
  }
  if (declared && (keys == 0 || keys != values))
    problems.push_back("the config declares an FP8 KV cache but the folder holds " +
                       std::to_string(keys) + " k_scale and " + std::to_string(values) +
                       " v_scale tensors");
}

}  // namespace

FolderEngineCheck check_folder_engine_view(const std::string& dir) {
  FolderEngineCheck out;
  const std::string config_path = dir + "/config.json";
  const nlohmann::json config = read_json(config_path);
  out.view = engine_view_of(config, config_path);
  const std::string hq_path = dir + "/hf_quant_config.json";
  std::optional<EngineView> nested;
  if (path_exists(hq_path)) {
    nested = engine_view_of_hf_quant_config(read_json(hq_path), hq_path);
    if (out.view.method != "modelopt")
      out.problems.push_back(
          "hf_quant_config.json exists but config.json's quantization_config "
          "is not ModelOpt's: TensorRT-LLM and vLLM would read different "
          "schemes");
    else if (nested->algo != out.view.algo)
      out.problems.push_back("hf_quant_config.json declares quant_algo '" + nested->algo +
                             "' but config.json '" + out.view.algo + "'");
    else if (nested->kv_cache_fp8 != out.view.kv_cache_fp8)
      out.problems.push_back(std::string("hf_quant_config.json ") +
                             (nested->kv_cache_fp8 ? "declares" : "does not declare") +
                             " an FP8 KV cache but config.json " +
                             (out.view.kv_cache_fp8 ? "does" : "does not"));
  } else if (out.view.method == "modelopt") {
    out.problems.push_back(
        "config.json declares ModelOpt's scheme but hf_quant_config.json, "
        "which TensorRT-LLM reads, is missing");
  }
  // A GPT-OSS release is a source: its experts are MXFP4 blocks, no linear an engine quantizes
  // on load, so there is no exclusion list to hold against its stored modules.
  if (out.view.method == "mxfp4") return out;
  const io::CheckpointFolder folder = io::CheckpointFolder::open(dir);
  const auto modules = stored_modules(folder, config);
  for (const auto& [name, quantized] : modules)
    out.modules.push_back({name, quantized, !engine_verdict(out.view, name).excluded_by_any});
  for (const std::string& p : engine_mismatches(out.view, modules)) out.problems.push_back(p);
  if (nested)
    for (const std::string& p : engine_mismatches(*nested, modules))
      out.problems.push_back("hf_quant_config.json: " + p);
  check_fused_scalars(folder, modules, out.problems);
  check_kv_scales(folder, out.view.kv_cache_fp8, out.problems);
  // Static activations: an input_scale beside every quantized weight, finite and > 0; dynamic
  // schemes carry none.
  for (const auto& [name, quantized] : modules) {
    if (!quantized || !folder.has(name + ".weight")) continue;
    const std::string in = name + ".input_scale";
    if (out.view.static_activations) {
      if (!folder.has(in)) {
        out.problems.push_back("'" + name + "' has no input_scale, but quant_algo '" +
                               out.view.algo + "' declares static activations");
      } else {
        const float v = scalar_f32(folder, in);
        if (!(std::isfinite(v) && v > 0))
          out.problems.push_back("'" + in + "' is " + std::to_string(v) +
                                 ": an input_scale must be a finite float32 scalar > 0");
      }
    } else if (folder.has(in)) {
      out.problems.push_back("'" + in +
                             "' is present but the config declares dynamic (or no) activation "
                             "scales: engines would ignore it");
    }
  }
  return out;
}

}  // namespace moequant
