// Writes a small synthetic Hugging Face MoE checkpoint (Qwen3-MoE or Mixtral naming, per-expert
// or fused 3-D expert tensors, one or several shards): the built-in model of `moequant quantize`
// and the generated models of the tests and benchmarks.
#pragma once

#include <cstdint>
#include <string>

namespace moequant {

struct SyntheticModelSpec {
  std::string model_type = "qwen3_moe";  // or "mixtral"
  int layers = 2;
  int experts = 8;
  int64_t hidden = 64;
  int64_t intermediate = 32;
  int64_t vocab = 256;
  bool fused_experts = false;  // store experts as 3-D gate_up_proj / down_proj
  int shards = 1;              // >1: model-0000k-of-0000n.safetensors + index
  uint64_t seed = 0;
};

// Creates `dir` (must not exist) with config.json and the weights (bf16, seeded).
void write_synthetic_model(const std::string& dir, const SyntheticModelSpec& spec);

}  // namespace moequant
