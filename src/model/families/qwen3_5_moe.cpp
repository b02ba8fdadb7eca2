// Qwen3.5-MoE: Qwen3-Next's hybrid decoder (gated full attention and Gated DeltaNet layers, a
// gated shared expert) with the DeltaNet input projections split (linear_attn.{in_proj_qkv,
// in_proj_z, in_proj_b, in_proj_a}) and every layer MoE. Two model types: qwen3_5_moe_text, the
// text model alone (model.layers.*), and qwen3_5_moe, the release's multimodal wrapper
// (Qwen3_5MoeForConditionalGeneration): its text model's keys under text_config, its tensors
// under model.language_model.* with the experts fused ([E, 2I, H] gate rows first, no
// ".weight"), beside the vision tower (model.visual.*) and the multi-token-prediction head
// (mtp.*), both carried over untouched.
#include "moequant/common/error.h"
#include "qwen_moe_layout.h"

namespace moequant {

namespace {

class Qwen35Moe : public QwenMoeLayout {
 public:
  explicit Qwen35Moe(bool wrapper) : wrapper_(wrapper) {}
  std::vector<std::string> model_types() const override {
    return {wrapper_ ? "qwen3_5_moe" : "qwen3_5_moe_text"};
  }
  const nlohmann::json& text_config(const nlohmann::json& c,
                                    const std::string& file) const override {
    if (!wrapper_) return c;
    MQ_CHECK(c.contains("text_config") && c["text_config"].is_object(), file,
             ": model_type qwen3_5_moe is the multimodal wrapper, whose text model's keys belong "
             "under 'text_config', which is missing");
    return c["text_config"];
  }
  std::string text_root() const override { return wrapper_ ? "model.language_model." : "model."; }
  std::string shared_expert(int layer) const override {
    return moe_block(layer) + ".shared_expert";
  }
  std::string shared_expert_gate(int layer) const override {
    return moe_block(layer) + ".shared_expert_gate";
  }
  void configure(DecoderConfig& d, const nlohmann::json& c,
                 const std::string& file) const override {
    QwenMoeLayout::configure(d, c, file);
    d.normalize_topk = config_bool(c, "norm_topk_prob", file, true);
    d.shared_intermediate = config_int(c, {"shared_expert_intermediate_size"}, file, 1, kMaxWidth);
    d.shared_expert_gate = true;
    configure_qwen_hybrid(d, c, file, /*split_projections=*/true);
  }
  nlohmann::json synthetic_config(const ModelShape& s) const override {
    MQ_CHECK(s.dense_layers.empty(), "qwen3_5_moe has no dense layers");
    nlohmann::json text = qwen_config(s, "qwen3_5_moe_text", "Qwen3_5MoeForCausalLM");
    text.erase("decoder_sparse_step");
    text.erase("mlp_only_layers");
    text.erase("intermediate_size");
    add_hybrid_keys(text, s);
    if (!wrapper_) return text;
    nlohmann::json c = {{"architectures", {"Qwen3_5MoeForConditionalGeneration"}},
                        {"model_type", "qwen3_5_moe"},
                        {"tie_word_embeddings", false},
                        {"text_config", text}};
    return c;
  }

 private:
  bool wrapper_;
};

}  // namespace

const ModelFamily& qwen3_5_moe_family() {
  static const Qwen35Moe family(false);
  return family;
}

const ModelFamily& qwen3_5_moe_wrapper_family() {
  static const Qwen35Moe family(true);
  return family;
}

}  // namespace moequant
