// What the forward of a Hugging Face MoE decoder needs from config.json: attention shapes, RoPE,
// norms, routing. Read once per model from an ModelConfig (its family decides the choices that
// differ between families).
#pragma once

#include <cstdint>
#include <string>

#include "moequant/model/model_config.h"

namespace moequant {

struct DecoderConfig {
  int64_t vocab = 0;
  int64_t hidden = 0;
  int heads = 0;
  int kv_heads = 0;
  int64_t head_dim = 0;
  double rope_theta = 10000.0;
  double rms_eps = 1e-6;
  int top_k = 0;
  bool normalize_topk = false;  // renormalize the top-k router weights to sum to one
  bool qk_norm = false;         // Qwen3: RMSNorm of each head's q and k before RoPE
  bool qkv_bias = false;        // Qwen2: bias on q, k, v
  bool tie_word_embeddings = false;
  bool shared_expert = false;  // Qwen2-MoE: a shared expert scaled by sigmoid(gate)
};

// Reads and checks the forward's keys; errors name config.json and the key.
DecoderConfig decoder_config(const ModelConfig& config);

}  // namespace moequant
