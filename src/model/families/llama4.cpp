// Llama-4 text model (llama4_text): grouped-query attention (q/k L2-normalized per head with
// use_qk_norm, no weight; chunked attention on the layers layer_types says), a MoE block at
// feed_forward in the layers moe_layers lists (or every interleave_moe_layer_step-th): router
// feed_forward.router (the top k of its logits; the sigmoid of each scales the expert's input),
// num_local_experts experts of intermediate_size stored fused as x @ W with gate the first half
// (gate_up_proj [E, H, 2I], down_proj [E, I, H]), a shared expert feed_forward.shared_expert of
// the same size; other layers a dense MLP feed_forward.{gate,up,down}_proj of
// intermediate_size_mlp.
#include <algorithm>

#include "families.h"
#include "moequant/common/error.h"

namespace moequant {

namespace {

class Llama4 : public ModelFamily {
 public:
  std::vector<std::string> model_types() const override { return {"llama4_text"}; }
  int64_t expert_intermediate(const nlohmann::json& c, const std::string& file) const override {
    return config_int(c, {"intermediate_size"}, file, 1, kMaxWidth);
  }
  std::vector<int> moe_layers(const nlohmann::json& c, int num_layers,
                              const std::string& file) const override {
    std::vector<int> out;
    if (config_has(c, "moe_layers")) {
      MQ_CHECK(c["moe_layers"].is_array(), file, ": 'moe_layers' must be a list");
      for (const auto& v : c["moe_layers"]) {
        MQ_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < num_layers,
                 file, ": 'moe_layers' holds ", v.dump(), ", expected layer indices below ",
                 num_layers);
        out.push_back(v.get<int>());
      }
      std::sort(out.begin(), out.end());
      out.erase(std::unique(out.begin(), out.end()), out.end());
      return out;
    }
    const int64_t step = config_int_or(c, {"interleave_moe_layer_step"}, file, 1, 1, kMaxLayers);
    for (int l = 0; l < num_layers; ++l)
      if ((l + 1) % step == 0) out.push_back(l);
    return out;
  }
  void configure(DecoderConfig& d, const nlohmann::json& c,
                 const std::string& file) const override {
    d.router = RouterKind::kSigmoidTopK;
    d.qk_l2_norm = config_bool(c, "use_qk_norm", file, false);
    d.shared_intermediate = config_int(c, {"intermediate_size"}, file, 1, kMaxWidth);
    d.dense_intermediate = config_int_or(c, {"intermediate_size_mlp"}, file, 0, 1, kMaxWidth);
  }
  std::string moe_block(int layer) const override { return layer_prefix(layer) + "feed_forward"; }
  std::string router(int layer) const override { return moe_block(layer) + ".router"; }
  std::string dense_mlp(int layer) const override { return layer_prefix(layer) + "feed_forward"; }
  std::string shared_expert(int layer) const override {
    return moe_block(layer) + ".shared_expert";
  }
  FusedExpertLayout fused_layout() const override { return {true, false}; }
  nlohmann::json synthetic_config(const ModelShape& s) const override {
    nlohmann::json c = synthetic_base_config(s, "llama4_text", "Llama4ForCausalLM");
    c["num_local_experts"] = s.experts;
    c["intermediate_size"] = s.intermediate;
    c["intermediate_size_mlp"] = s.dense_intermediate_or_default();
    nlohmann::json moe = nlohmann::json::array();
    for (int l = 0; l < s.layers; ++l)
      if (std::find(s.dense_layers.begin(), s.dense_layers.end(), l) == s.dense_layers.end())
        moe.push_back(l);
    c["moe_layers"] = moe;
    c["use_qk_norm"] = true;
    c["attention_chunk_size"] = 8192;
    nlohmann::json types = nlohmann::json::array();
    for (int l = 0; l < s.layers; ++l)
      types.push_back((l + 1) % 4 == 0 ? "full_attention" : "chunked_attention");
    c["layer_types"] = types;
    c["rope_parameters"]["rope_theta"] = 500000.0;
    c["rms_norm_eps"] = 1e-5;
    return c;
  }
};

}  // namespace

const ModelFamily& llama4_family() {
  static const Llama4 family;
  return family;
}

}  // namespace moequant
