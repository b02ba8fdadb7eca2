// A Hugging Face MoE model's config.json, and the names its experts have on disk.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace moequant {

// The three projections of one SwiGLU expert.
enum class ExpertProj { kGate, kUp, kDown };

// Supported naming families of expert tensors.
enum class MoeNaming {
  kQwen3,    // model.layers.{L}.mlp.experts.{E}.{gate,up,down}_proj.weight, router mlp.gate
  kMixtral,  // model.layers.{L}.block_sparse_moe.experts.{E}.{w1,w3,w2}.weight, router .gate
};

struct HfMoeConfig {
  std::string dir;         // the model folder
  std::string model_type;  // "qwen3_moe", "mixtral", ...
  MoeNaming naming = MoeNaming::kQwen3;
  int num_layers = 0;
  int num_experts = 0;
  int64_t hidden = 0;
  int64_t intermediate = 0;     // of one expert
  std::vector<int> moe_layers;  // global indices of the layers with routed experts
  nlohmann::json raw;           // config.json as read

  bool is_moe_layer(int layer) const;
  // "model.layers.{L}.mlp.experts" (qwen3) / "model.layers.{L}.block_sparse_moe.experts".
  std::string experts_prefix(int layer) const;
  // Name of the projection inside an expert: gate_proj/up_proj/down_proj or w1/w3/w2.
  std::string proj_name(ExpertProj p) const;
  // "<experts_prefix>.{E}.<proj>": the module name of one expert projection.
  std::string expert_module_name(int layer, int expert, ExpertProj p) const;
  // "<experts_prefix>.{E}.<proj>.weight".
  std::string expert_weight_name(int layer, int expert, ExpertProj p) const;
  // The fused 3-D names that some transformers 5 checkpoints store instead:
  // "<experts_prefix>.gate_up_proj" [E, 2I, H] and "<experts_prefix>.down_proj" [E, H, I].
  std::string fused_gate_up_name(int layer) const;
  std::string fused_down_name(int layer) const;
  // Module-name patterns of what is not quantized (attention, routers, shared experts,
  // norms, embeddings, lm_head), for exclude_modules / modules_to_not_convert.
  std::vector<std::string> unquantized_module_patterns() const;
  // Names of the expert projections as they appear inside a decoder block, for GPTQ's
  // modules_in_block_to_quantize ("mlp.experts" / "block_sparse_moe.experts").
  std::string experts_in_block() const;
};

// Reads and validates <dir>/config.json. Errors name the folder and the missing/invalid key;
// an unsupported model_type lists the supported ones.
HfMoeConfig read_hf_config(const std::string& dir);

}  // namespace moequant
