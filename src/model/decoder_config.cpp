#include "moequant/model/decoder_config.h"

#include <cmath>

#include "moequant/common/error.h"
#include "moequant/model/config_values.h"

namespace moequant {

namespace {

// RoPE: transformers 5 keeps it under "rope_parameters"; older configs (DeepSeek-V3's release)
// have a top-level rope_theta and a "rope_scaling" object ("type" or "rope_type").
void read_rope(RopeSettings& r, const nlohmann::json& c, const std::string& file) {
  r.theta = config_number(c, "rope_theta", file, r.theta);
  const nlohmann::json* p = nullptr;
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object()) p = &c["rope_parameters"];
  if (c.contains("rope_scaling") && c["rope_scaling"].is_object()) {
    MQ_CHECK(p == nullptr, file, ": both rope_parameters and rope_scaling are given");
    p = &c["rope_scaling"];
  } else if (config_has(c, "rope_scaling")) {
    MQ_THROW(file, ": rope_scaling must be an object or null");
  }
  if (!p) return;
  r.theta = config_number(*p, "rope_theta", file, r.theta);
  std::string type = "default";
  for (const char* key : {"rope_type", "type"})
    if (config_has(*p, key)) {
      MQ_CHECK((*p)[key].is_string(), file, ": rope '", key, "' must be a string");
      type = (*p)[key].get<std::string>();
      break;
    }
  if (type == "default") return;
  MQ_CHECK(type == "yarn", file, ": rope_type '", type,
           "' is not supported by moequant's forward (default and yarn only)");
  r.yarn_factor = config_number(*p, "factor", file, 0.0);
  MQ_CHECK(r.yarn_factor > 0, file, ": yarn needs a positive 'factor'");
  r.yarn_original_max_positions =
      config_int(*p, {"original_max_position_embeddings"}, file, 1, int64_t{1} << 32);
  r.yarn_beta_fast = config_number(*p, "beta_fast", file, 32.0);
  r.yarn_beta_slow = config_number(*p, "beta_slow", file, 1.0);
  r.yarn_truncate = config_bool(*p, "truncate", file, true);
  r.yarn_mscale = config_number(*p, "mscale", file, 0.0);
  r.yarn_mscale_all_dim = config_number(*p, "mscale_all_dim", file, 0.0);
  // transformers' _compute_yarn_parameters: an explicit attention_factor, else the ratio of the
  // two mscales when both are given, else yarn_mscale(factor, 1).
  if (config_has(*p, "attention_factor"))
    r.attention_factor = config_number(*p, "attention_factor", file, 1.0);
  else if (r.yarn_mscale != 0 && r.yarn_mscale_all_dim != 0)
    r.attention_factor = yarn_mscale(r.yarn_factor, r.yarn_mscale) /
                         yarn_mscale(r.yarn_factor, r.yarn_mscale_all_dim);
  else
    r.attention_factor = yarn_mscale(r.yarn_factor, 1.0);
}

// transformers' "layer_types", one per decoder layer; absent: every layer full attention.
void read_layer_types(DecoderConfig& d, const nlohmann::json& c, int num_layers,
                      const std::string& file) {
  if (!config_has(c, "layer_types")) return;
  const nlohmann::json& types = c["layer_types"];
  MQ_CHECK(types.is_array() && types.size() == static_cast<size_t>(num_layers), file,
           ": 'layer_types' must list one type per layer (", num_layers, ")");
  for (const nlohmann::json& t : types) {
    const std::string type = t.is_string() ? t.get<std::string>() : t.dump();
    if (type == "full_attention")
      d.mixers.push_back(LayerMixer::kFullAttention);
    else if (type == "sliding_attention")
      d.mixers.push_back(LayerMixer::kSlidingAttention);
    else if (type == "chunked_attention")
      d.mixers.push_back(LayerMixer::kChunkedAttention);
    else if (type == "linear_attention")
      d.mixers.push_back(LayerMixer::kGatedDeltaNet);
    else
      MQ_THROW(file, ": layer_types holds '", type,
               "' (read: full_attention, sliding_attention, chunked_attention, linear_attention)");
  }
  auto any = [&](LayerMixer m) {
    for (LayerMixer x : d.mixers)
      if (x == m) return true;
    return false;
  };
  if (any(LayerMixer::kSlidingAttention))
    d.sliding_window = config_int(c, {"sliding_window"}, file, 1, int64_t{1} << 32);
  if (any(LayerMixer::kChunkedAttention))
    d.chunk_size = config_int(c, {"attention_chunk_size"}, file, 1, int64_t{1} << 32);
  if (any(LayerMixer::kGatedDeltaNet))
    MQ_CHECK(d.delta_net.key_heads > 0, file,
             ": layer_types has linear_attention layers but the family reads no Gated DeltaNet "
             "sizes");
}

}  // namespace

double yarn_mscale(double factor, double mscale) {
  return factor <= 1 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

DecoderConfig decoder_config(const ModelConfig& config) {
  const nlohmann::json& c = config.text;
  const std::string file = config.dir.empty() ? "config.json" : config.dir + "/config.json";
  DecoderConfig d;
  d.vocab = config_int(c, {"vocab_size"}, file, 1, kMaxVocab);
  d.hidden = config.hidden;
  d.max_positions = config_int_or(c, {"max_position_embeddings"}, file, 0, 1, int64_t{1} << 32);
  d.heads = static_cast<int>(config_int(c, {"num_attention_heads"}, file, 1, kMaxHeads));
  d.kv_heads =
      static_cast<int>(config_int_or(c, {"num_key_value_heads"}, file, d.heads, 1, kMaxHeads));
  MQ_CHECK(d.heads % d.kv_heads == 0, file, ": num_attention_heads ", d.heads,
           " is not a multiple of num_key_value_heads ", d.kv_heads);
  d.head_dim = config_int_or(c, {"head_dim"}, file, d.hidden / d.heads, 1, kMaxWidth);
  d.rms_eps = config_number(c, "rms_norm_eps", file, d.rms_eps);
  d.tie_word_embeddings = config_bool(c, "tie_word_embeddings", file, false);
  // Qwen2's sliding window (GPT-OSS's comes per layer, in layer_types).
  MQ_CHECK(!config_bool(c, "use_sliding_window", file, false), file,
           ": use_sliding_window is not supported by moequant's forward (full causal attention)");
  read_rope(d.rope, c, file);
  d.rope.dim = d.head_dim;
  d.top_k = static_cast<int>(config_int(c, {"num_experts_per_tok"}, file, 1, kMaxExperts));
  MQ_CHECK(d.top_k <= config.num_experts, file, ": num_experts_per_tok ", d.top_k, " exceeds ",
           config.num_experts, " experts");
  config.family->configure(d, c, file);  // what differs between families
  read_layer_types(d, c, config.num_layers, file);
  if (d.softmax_scale == 0.0) d.softmax_scale = 1.0 / std::sqrt(static_cast<double>(d.head_dim));
  MQ_CHECK(d.rope.dim >= 2 && d.rope.dim % 2 == 0, file, ": the rotated part of a head (",
           d.rope.dim, ") must be even for RoPE");
  if (d.router == RouterKind::kSigmoidGroupedTopK) {
    MQ_CHECK(config.num_experts % d.n_group == 0, file, ": ", config.num_experts,
             " experts do not divide into n_group ", d.n_group, " groups");
    MQ_CHECK(d.top_k <= d.topk_group * (config.num_experts / d.n_group), file,
             ": num_experts_per_tok ", d.top_k, " exceeds the ", d.topk_group, " x ",
             config.num_experts / d.n_group, " experts of the groups kept");
  }
  return d;
}

}  // namespace moequant
