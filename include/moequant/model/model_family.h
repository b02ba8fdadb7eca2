// What differs between Hugging Face MoE families: which config.json keys give their sizes and
// which layers are MoE, where the routed experts sit and what their projections are called, the
// forward's choices (attention kind, router, shared expert), and how a synthetic checkpoint of
// the family is described. Each family is one file in src/model/families/; what all of them share
// (model.layers.{L}, the norms, embed_tokens, lm_head, the tensors of each attention kind) is in
// model_config.h and model_tensors.h.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace moequant {

// The three projections of one SwiGLU expert: out = down(silu(gate(x)) * up(x)).
enum class ExpertProj { kGate, kUp, kDown };

struct DecoderConfig;

// How a checkpoint that stores a layer's routed experts fused (3-D "<experts>.gate_up_proj" and
// "<experts>.down_proj", no ".weight") lays them out (docs/formats.md, "Fused experts on disk").
struct FusedExpertLayout {
  // false: gate_up [E, 2I, H] and down [E, H, I], outputs by row as nn.Linear stores them
  // (transformers 5's Qwen experts); true: gate_up [E, H, 2I] and down [E, I, H], applied as
  // x @ W (GPT-OSS, Llama-4).
  bool transposed = false;
  // false: the first I outputs of gate_up are gate, the next I up; true: output 2j is gate j and
  // 2j+1 up j (GPT-OSS).
  bool interleaved = false;
};

// The sizes of a synthetic checkpoint (moequant generate): what a family's config.json is made
// from. A family reads what it uses (e.g. the MLA ranks follow from `hidden` and `heads`).
struct ModelShape {
  int layers = 2;
  int experts = 8;
  int top_k = 2;
  int64_t hidden = 64;
  int64_t intermediate = 32;       // of one routed expert
  int64_t dense_intermediate = 0;  // dense MLP layers and shared experts (0: 4 x intermediate)
  int heads = 4;
  int kv_heads = 2;
  int64_t head_dim = 0;  // 0: hidden / heads
  int64_t vocab = 256;
  std::vector<int> dense_layers;  // layers with a dense MLP instead of experts
  int64_t dense_intermediate_or_default() const {
    return dense_intermediate > 0 ? dense_intermediate : 4 * intermediate;
  }
  int64_t head_dim_or_default() const { return head_dim > 0 ? head_dim : hidden / heads; }
};

class ModelFamily {
 public:
  virtual ~ModelFamily() = default;

  // The config.json model_type values this family reads ("qwen3_moe").
  virtual std::vector<std::string> model_types() const = 0;

  // ---- config.json ---------------------------------------------------------------------------
  // The text model's keys: the object itself, or the part a multimodal wrapper nests them in
  // ("text_config"); errors name `file` when the wrapper has none.
  virtual const nlohmann::json& text_config(const nlohmann::json& config,
                                            const std::string& file) const;
  // E, the routed experts of a MoE layer, and I of one of them; errors name `file` and the key.
  virtual int64_t num_experts(const nlohmann::json& config, const std::string& file) const;
  virtual int64_t expert_intermediate(const nlohmann::json& config,
                                      const std::string& file) const = 0;
  // Global indices of the layers with routed experts; the others hold a dense MLP.
  virtual std::vector<int> moe_layers(const nlohmann::json& config, int num_layers,
                                      const std::string& file) const;
  // Layers the checkpoint holds past num_hidden_layers (DeepSeek's multi-token-prediction
  // layers): carried over unquantized, never run.
  virtual int extra_layers(const nlohmann::json& config, const std::string& file) const;
  // The forward's settings that differ between families (the attention kind and its options,
  // RoPE's rotated dims, the router, the shared expert, the dense MLP size).
  virtual void configure(DecoderConfig& d, const nlohmann::json& config,
                         const std::string& file) const = 0;

  // ---- module names (".weight" is appended by callers) --------------------------------------
  // The prefix of the text model's tensors: "model." ("model.language_model." inside a
  // multimodal wrapper); its layers are "<root>layers.{L}.".
  virtual std::string text_root() const;
  std::string layer_prefix(int layer) const;
  // The MoE block of a layer ("model.layers.3.mlp"); its router ("<block>.gate" by default) and
  // its routed experts "<block>.experts.{E}.<expert_proj>".
  virtual std::string moe_block(int layer) const;
  virtual std::string router(int layer) const;
  // The MLP of a layer without routed experts ("model.layers.0.mlp").
  virtual std::string dense_mlp(int layer) const;
  // How fused experts lie on disk when a checkpoint stores them fused.
  virtual FusedExpertLayout fused_layout() const;
  virtual std::string expert_proj(ExpertProj p) const;
  // The shared expert of a MoE block ("" when the family has none) and its sigmoid gate ("" when
  // it is not gated).
  virtual std::string shared_expert(int layer) const;
  virtual std::string shared_expert_gate(int layer) const;

  // ---- a synthetic checkpoint (moequant generate) ---------------------------------------------
  // config.json of a model of this family with the given sizes; errors name what the family
  // cannot hold (e.g. dense layers that are not the first ones).
  virtual nlohmann::json synthetic_config(const ModelShape& shape) const = 0;
};

// The family whose model_types() holds `model_type`; errors name `file` and list the supported
// types.
const ModelFamily& family_for_model_type(const std::string& model_type, const std::string& file);

// Every model_type some family reads, sorted.
std::vector<std::string> supported_model_types();

}  // namespace moequant
