// Writes a complete synthetic Hugging Face MoE checkpoint of one of the supported families
// (Qwen3-MoE, Qwen2-MoE, Mixtral): every tensor its transformers model has (embeddings, norms,
// attention with the family's q/k norms or biases, router, routed experts per expert or fused
// 3-D, shared experts, dense MLP layers, lm_head), seeded random bf16 weights, one or several
// shards. The built-in model of `moequant quantize` and the generated models of the tests and
// benchmarks; the forward runs on them as on real checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moequant {

struct SyntheticModelSpec {
  std::string model_type = "qwen3_moe";  // "qwen3_moe", "qwen2_moe" or "mixtral"
  int layers = 2;
  int experts = 8;
  int top_k = 2;
  int64_t hidden = 64;
  int64_t intermediate = 32;       // of one routed expert
  int64_t dense_intermediate = 0;  // dense MLP layers and Qwen2's shared expert (0: 4 x I)
  int heads = 4;
  int kv_heads = 2;
  int64_t head_dim = 0;  // 0: hidden / heads
  int64_t vocab = 256;
  std::vector<int> dense_layers;  // Qwen: mlp_only_layers (dense MLP instead of experts)
  bool fused_experts = false;     // store experts as 3-D gate_up_proj / down_proj
  int shards = 1;                 // >1: model-0000k-of-0000n.safetensors + index
  uint64_t seed = 0;
};

// Creates `dir` (must not exist) with config.json and the weights. Memory: one tensor at a time.
void write_synthetic_model(const std::string& dir, const SyntheticModelSpec& spec);

}  // namespace moequant
