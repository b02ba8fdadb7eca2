// What differs between Hugging Face MoE families: where the routed experts sit and what their
// projections are called, which config.json keys give their sizes and which layers are MoE, and
// the choices their forward makes. Each family is one file in src/hf/families/; what all of them
// share (model.layers.{L}, self_attn, the norms, embed_tokens, lm_head) is in model_config.h.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace moequant {

// The three projections of one SwiGLU expert: out = down(silu(gate(x)) * up(x)).
enum class ExpertProj { kGate, kUp, kDown };

class ModelFamily {
 public:
  virtual ~ModelFamily() = default;

  // The config.json model_type values this family reads ("qwen3_moe").
  virtual std::vector<std::string> model_types() const = 0;

  // ---- config.json ---------------------------------------------------------------------------
  // I of one routed expert; errors name `file` and the key.
  virtual int64_t expert_intermediate(const nlohmann::json& config,
                                      const std::string& file) const = 0;
  // Global indices of the layers with routed experts; the others hold a dense MLP.
  virtual std::vector<int> moe_layers(const nlohmann::json& config, int num_layers) const;
  // Whether the top-k router weights are renormalized to sum to one.
  virtual bool normalize_topk(const nlohmann::json& config) const = 0;

  // ---- module names (".weight" is appended by callers) --------------------------------------
  // The MoE block of a layer ("model.layers.3.mlp"); its router is "<block>.gate" and its
  // routed experts "<block>.experts.{E}.<expert_proj>".
  virtual std::string moe_block(int layer) const = 0;
  virtual std::string expert_proj(ExpertProj p) const = 0;
  // The shared expert of a MoE block ("" when the family has none) and its sigmoid gate.
  virtual std::string shared_expert(int layer) const;
  virtual std::string shared_expert_gate(int layer) const;

  // ---- forward -------------------------------------------------------------------------------
  // RMSNorm of each head's queries and keys before RoPE (Qwen3).
  virtual bool qk_norm() const { return false; }
  // Bias on the q, k and v projections (Qwen2).
  virtual bool qkv_bias() const { return false; }
};

// The family whose model_types() holds `model_type`; errors name `file` and list the supported
// types.
const ModelFamily& family_for_model_type(const std::string& model_type, const std::string& file);

// Every model_type some family reads, sorted.
std::vector<std::string> supported_model_types();

}  // namespace moequant
