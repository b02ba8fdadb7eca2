// Writes a complete synthetic Hugging Face MoE checkpoint of any family moequant reads: the
// family's config.json (ModelFamily::synthetic_config) and every tensor that config implies
// (model_tensors.h: embeddings, norms, attention of the family's kind, routers and their
// correction biases, shared experts, dense MLP layers, MTP layers, lm_head), the routed experts per
// expert or fused 3-D (in the family's layout; GPT-OSS, Llama-4 and the Qwen3.5 wrapper always
// fused, as released), seeded random weights, one or several shards; optionally as an FP8 block
// source in DeepSeek's release format (every decoder linear F8_E4M3 + weight_scale_inv) or as
// GPT-OSS's MXFP4 release (the experts' *_blocks and *_scales). The
// built-in model of `moequant quantize` and the generated models of the tests and benchmarks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moequant {

struct SyntheticModelSpec {
  std::string model_type = "qwen3_moe";  // any family's model_type
  int layers = 2;
  int experts = 8;
  int top_k = 2;
  int64_t hidden = 64;
  int64_t intermediate = 32;       // of one routed expert
  int64_t dense_intermediate = 0;  // dense MLP layers and shared experts (0: 4 x I)
  int heads = 4;
  int kv_heads = 2;
  int64_t head_dim = 0;  // 0: hidden / heads
  int64_t vocab = 256;
  std::vector<int> dense_layers;  // layers with a dense MLP (Qwen: any; DeepSeek/GLM: the first)
  bool fused_experts = false;     // store experts as 3-D gate_up_proj / down_proj
  bool fp8_source = false;        // DeepSeek's release format: decoder linears in FP8 blocks
  bool mxfp4_source = false;      // GPT-OSS's release format: experts in MXFP4 blocks
  int mtp_layers = -1;            // num_nextn_predict_layers where the family has it (-1: its own)
  int shards = 1;                 // >1: model-0000k-of-0000n.safetensors + index
  uint64_t seed = 0;
};

// Creates `dir` (must not exist) with config.json and the weights, made ahead of the writer on
// every core (memory: the tensors in flight, a quarter of the machine's or the largest one).
void write_synthetic_model(const std::string& dir, const SyntheticModelSpec& spec);

}  // namespace moequant
