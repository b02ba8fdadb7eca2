#include "families.h"

#include <algorithm>

#include "moequant/common/error.h"
#include "moequant/common/strings.h"

namespace moequant {

namespace {
const std::vector<const ModelFamily*>& all_families() {
  static const std::vector<const ModelFamily*> all = {&qwen3_moe_family(),
                                                      &qwen2_moe_family(),
                                                      &mixtral_family(),
                                                      &deepseek_v3_family(),
                                                      &glm4_moe_family(),
                                                      &gpt_oss_family(),
                                                      &olmoe_family(),
                                                      &llama4_family(),
                                                      &qwen3_next_family(),
                                                      &qwen3_5_moe_family(),
                                                      &qwen3_5_moe_wrapper_family()};
  return all;
}
}  // namespace

int64_t ModelFamily::num_experts(const nlohmann::json& c, const std::string& file) const {
  return config_int(c, {"num_experts", "num_local_experts"}, file, 1, kMaxExperts);
}

std::vector<int> ModelFamily::moe_layers(const nlohmann::json&, int num_layers,
                                         const std::string&) const {
  std::vector<int> all(num_layers);
  for (int l = 0; l < num_layers; ++l) all[l] = l;
  return all;
}

int ModelFamily::extra_layers(const nlohmann::json&, const std::string&) const {
  return 0;
}

const nlohmann::json& ModelFamily::text_config(const nlohmann::json& c, const std::string&) const {
  return c;
}

std::string ModelFamily::text_root() const {
  return "model.";
}

std::string ModelFamily::layer_prefix(int layer) const {
  return text_root() + "layers." + std::to_string(layer) + ".";
}

std::string ModelFamily::moe_block(int layer) const {
  return layer_prefix(layer) + "mlp";
}

std::string ModelFamily::router(int layer) const {
  return moe_block(layer) + ".gate";
}

std::string ModelFamily::dense_mlp(int layer) const {
  return layer_prefix(layer) + "mlp";
}

FusedExpertLayout ModelFamily::fused_layout() const {
  return {};
}

std::string ModelFamily::expert_proj(ExpertProj p) const {
  return swiglu_proj_name(p);
}

std::string ModelFamily::shared_expert(int) const {
  return "";
}
std::string ModelFamily::shared_expert_gate(int) const {
  return "";
}

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const ModelFamily* f : all_families())
    for (const std::string& t : f->model_types()) out.push_back(t);
  std::sort(out.begin(), out.end());
  return out;
}

const ModelFamily& family_for_model_type(const std::string& model_type, const std::string& file) {
  for (const ModelFamily* f : all_families())
    for (const std::string& t : f->model_types())
      if (t == model_type) return *f;
  MQ_THROW(file, ": unsupported model_type '", model_type,
           "' (supported: ", join(supported_model_types()), ")");
}

std::string swiglu_proj_name(ExpertProj p) {
  return p == ExpertProj::kGate ? "gate_proj" : p == ExpertProj::kUp ? "up_proj" : "down_proj";
}

std::vector<int> sparse_step_layers(const nlohmann::json& c, int num_layers,
                                    const std::string& file) {
  std::vector<int> dense_only;
  if (config_has(c, "mlp_only_layers")) {
    MQ_CHECK(c["mlp_only_layers"].is_array(), file, ": 'mlp_only_layers' must be a list");
    for (const auto& v : c["mlp_only_layers"]) {
      MQ_CHECK(v.is_number_integer(), file, ": 'mlp_only_layers' holds ", v.dump(),
               ", expected layer indices");
      dense_only.push_back(v.get<int>());
    }
  }
  const int64_t step = config_int_or(c, {"decoder_sparse_step"}, file, 1, 1, kMaxLayers);
  std::vector<int> out;
  for (int l = 0; l < num_layers; ++l) {
    const bool dense = std::find(dense_only.begin(), dense_only.end(), l) != dense_only.end();
    if (!dense && (l + 1) % step == 0) out.push_back(l);
  }
  return out;
}

std::vector<int> first_k_dense_layers(const nlohmann::json& c, int num_layers,
                                      const std::string& file) {
  const int64_t k = config_int_or(c, {"first_k_dense_replace"}, file, 0, 0, kMaxLayers);
  const int64_t freq = config_int_or(c, {"moe_layer_freq"}, file, 1, 1, kMaxLayers);
  std::vector<int> out;
  for (int l = 0; l < num_layers; ++l)
    if (l >= k && l % freq == 0) out.push_back(l);
  return out;
}

void configure_grouped_router(DecoderConfig& d, const nlohmann::json& c, const std::string& file) {
  d.router = RouterKind::kSigmoidGroupedTopK;
  d.router_bias = true;
  d.n_group = static_cast<int>(config_int_or(c, {"n_group"}, file, 1, 1, kMaxExperts));
  d.topk_group = static_cast<int>(config_int_or(c, {"topk_group"}, file, 1, 1, d.n_group));
  d.routed_scaling = config_number(c, "routed_scaling_factor", file, 1.0);
  d.normalize_topk = config_bool(c, "norm_topk_prob", file, true);
  if (config_has(c, "scoring_func"))
    MQ_CHECK(c["scoring_func"] == "sigmoid", file, ": scoring_func ", c["scoring_func"].dump(),
             " is not read (sigmoid only)");
  if (config_has(c, "topk_method"))
    MQ_CHECK(c["topk_method"] == "noaux_tc", file, ": topk_method ", c["topk_method"].dump(),
             " is not read (noaux_tc only)");
}

void configure_qwen_hybrid(DecoderConfig& d, const nlohmann::json& c, const std::string& file,
                           bool split_projections) {
  d.gated_query = true;
  d.qk_norm = true;
  double partial = config_number(c, "partial_rotary_factor", file, 1.0);
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object())
    partial = config_number(c["rope_parameters"], "partial_rotary_factor", file, partial);
  MQ_CHECK(partial > 0 && partial <= 1, file, ": partial_rotary_factor ", partial,
           " is not in (0, 1]");
  d.rope.dim = static_cast<int64_t>(d.head_dim * partial);
  DeltaNetSizes& n = d.delta_net;
  n.key_heads = config_int(c, {"linear_num_key_heads"}, file, 1, kMaxHeads);
  n.value_heads = config_int(c, {"linear_num_value_heads"}, file, 1, kMaxHeads);
  n.key_head_dim = config_int(c, {"linear_key_head_dim"}, file, 1, kMaxWidth);
  n.value_head_dim = config_int(c, {"linear_value_head_dim"}, file, 1, kMaxWidth);
  n.conv_kernel = config_int(c, {"linear_conv_kernel_dim"}, file, 1, 1024);
  n.split_projections = split_projections;
  // Without layer_types, transformers makes every full_attention_interval-th layer full
  // attention and the others linear.
  if (!config_has(c, "layer_types")) {
    const int64_t layers = config_int(c, {"num_hidden_layers"}, file, 1, kMaxLayers);
    const int64_t interval = config_int_or(c, {"full_attention_interval"}, file, 4, 1, kMaxLayers);
    for (int64_t l = 0; l < layers; ++l)
      d.mixers.push_back((l + 1) % interval == 0 ? LayerMixer::kFullAttention
                                                 : LayerMixer::kGatedDeltaNet);
  }
}

nlohmann::json synthetic_base_config(const ModelShape& s, const std::string& model_type,
                                     const std::string& architecture) {
  return {{"architectures", {architecture}},
          {"model_type", model_type},
          {"hidden_size", s.hidden},
          {"num_hidden_layers", s.layers},
          {"num_attention_heads", s.heads},
          {"num_key_value_heads", s.kv_heads},
          {"head_dim", s.head_dim_or_default()},
          {"vocab_size", s.vocab},
          {"num_experts_per_tok", s.top_k},
          {"hidden_act", "silu"},
          {"rms_norm_eps", 1e-6},
          {"rope_parameters", {{"rope_theta", 1e4}, {"rope_type", "default"}}},
          {"max_position_embeddings", 4096},
          {"tie_word_embeddings", false},
          {"attention_bias", false},
          {"dtype", "bfloat16"}};
}

int synthetic_groups(const ModelShape& s) {
  for (int g : {8, 4, 2})
    if (s.experts % g == 0 && s.experts / g >= std::max(2, s.top_k)) return g;
  return 1;
}

}  // namespace moequant
