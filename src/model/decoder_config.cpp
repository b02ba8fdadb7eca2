#include "moequant/model/decoder_config.h"

#include "moequant/common/error.h"

namespace moequant {

namespace {

int64_t positive_int(const nlohmann::json& c, const char* key, const std::string& file) {
  MQ_CHECK(c.contains(key) && c[key].is_number_integer() && c[key].get<int64_t>() > 0, file,
           ": the forward needs '", key, "', a positive integer");
  return c[key].get<int64_t>();
}

double number_or(const nlohmann::json& c, const char* key, double fallback) {
  return c.contains(key) && c[key].is_number() ? c[key].get<double>() : fallback;
}

}  // namespace

DecoderConfig decoder_config(const ModelConfig& config) {
  const nlohmann::json& c = config.raw;
  const std::string file = config.dir.empty() ? "config.json" : config.dir + "/config.json";
  DecoderConfig d;
  d.vocab = positive_int(c, "vocab_size", file);
  d.hidden = config.hidden;
  d.heads = static_cast<int>(positive_int(c, "num_attention_heads", file));
  d.kv_heads = c.contains("num_key_value_heads") && !c["num_key_value_heads"].is_null()
                   ? static_cast<int>(positive_int(c, "num_key_value_heads", file))
                   : d.heads;
  MQ_CHECK(d.heads % d.kv_heads == 0, file, ": num_attention_heads ", d.heads,
           " is not a multiple of num_key_value_heads ", d.kv_heads);
  d.head_dim = c.contains("head_dim") && !c["head_dim"].is_null()
                   ? positive_int(c, "head_dim", file)
                   : d.hidden / d.heads;
  MQ_CHECK(d.head_dim % 2 == 0, file, ": head_dim ", d.head_dim, " must be even for RoPE");
  // transformers 5 keeps RoPE under rope_parameters; older configs have a top-level rope_theta.
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object()) {
    const nlohmann::json& r = c["rope_parameters"];
    const std::string type = r.contains("rope_type") && r["rope_type"].is_string()
                                 ? r["rope_type"].get<std::string>()
                                 : "default";
    MQ_CHECK(type == "default", file, ": rope_type '", type,
             "' is not supported by moequant's forward (default RoPE only)");
    d.rope_theta = number_or(r, "rope_theta", d.rope_theta);
  } else {
    d.rope_theta = number_or(c, "rope_theta", d.rope_theta);
  }
  if (c.contains("rope_scaling") && !c["rope_scaling"].is_null())
    MQ_THROW(file, ": rope_scaling is not supported by moequant's forward");
  MQ_CHECK(!(c.contains("use_sliding_window") && c["use_sliding_window"] == true), file,
           ": use_sliding_window is not supported by moequant's forward (full causal attention)");
  d.rms_eps = number_or(c, "rms_norm_eps", d.rms_eps);
  d.top_k = static_cast<int>(positive_int(c, "num_experts_per_tok", file));
  MQ_CHECK(d.top_k <= config.num_experts, file, ": num_experts_per_tok ", d.top_k, " exceeds ",
           config.num_experts, " experts");
  d.normalize_topk = config.family->normalize_topk(c);
  d.qk_norm = config.family->qk_norm();
  d.qkv_bias = config.family->qkv_bias();
  d.tie_word_embeddings = c.contains("tie_word_embeddings") &&
                          c["tie_word_embeddings"].is_boolean() &&
                          c["tie_word_embeddings"].get<bool>();
  d.shared_expert = !config.family->shared_expert(0).empty();
  return d;
}

}  // namespace moequant
