#include "synthetic_model.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <map>

#include "moequant/core/error.h"
#include "moequant/export/output_folder.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/io/safetensors.h"

namespace moequant {

namespace {

struct NamedTensor {
  std::string name;
  at::Tensor value;  // bf16, contiguous
};

nlohmann::json make_config(const SyntheticModelSpec& s) {
  const bool qwen = s.model_type == "qwen3_moe";
  nlohmann::json c = {{"architectures", {qwen ? "Qwen3MoeForCausalLM" : "MixtralForCausalLM"}},
                      {"model_type", s.model_type},
                      {"hidden_size", s.hidden},
                      {"num_hidden_layers", s.layers},
                      {"num_attention_heads", 4},
                      {"num_key_value_heads", 2},
                      {"head_dim", s.hidden / 4},
                      {"vocab_size", s.vocab},
                      {"num_local_experts", s.experts},
                      {"num_experts_per_tok", 2},
                      {"hidden_act", "silu"},
                      {"rms_norm_eps", 1e-6},
                      {"max_position_embeddings", 128},
                      {"tie_word_embeddings", false},
                      {"dtype", "bfloat16"}};
  if (qwen) {
    c["moe_intermediate_size"] = s.intermediate;
    c["intermediate_size"] = s.intermediate * 4;
    c["decoder_sparse_step"] = 1;
    c["mlp_only_layers"] = nlohmann::json::array();
    c["norm_topk_prob"] = false;
  } else {
    c["intermediate_size"] = s.intermediate;
  }
  return c;
}

}  // namespace

void write_synthetic_model(const std::string& dir, const SyntheticModelSpec& s) {
  MQ_CHECK(s.model_type == "qwen3_moe" || s.model_type == "mixtral",
           "synthetic model: unknown model type '", s.model_type, "'");
  MQ_CHECK(s.layers > 0 && s.experts > 0 && s.hidden > 0 && s.intermediate > 0 && s.shards > 0,
           "synthetic model: sizes must be positive");
  MQ_CHECK(!std::filesystem::exists(dir), "synthetic model: '", dir, "' already exists");
  std::filesystem::create_directories(dir);
  const bool qwen = s.model_type == "qwen3_moe";
  at::manual_seed(s.seed);
  auto rnd = [](std::vector<int64_t> shape, double scale) {
    return (at::randn(shape) * scale).to(at::kBFloat16).contiguous();
  };
  const int64_t H = s.hidden, I = s.intermediate, E = s.experts;
  std::vector<NamedTensor> tensors;
  tensors.push_back({"model.embed_tokens.weight", rnd({s.vocab, H}, 0.02)});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string moe = p + (qwen ? "mlp." : "block_sparse_moe.");
    tensors.push_back({p + "input_layernorm.weight", at::ones({H}).to(at::kBFloat16)});
    tensors.push_back({p + "post_attention_layernorm.weight", at::ones({H}).to(at::kBFloat16)});
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"})
      tensors.push_back({p + "self_attn." + proj + ".weight", rnd({H, H}, 0.05)});
    tensors.push_back({moe + "gate.weight", rnd({E, H}, 0.05)});
    const std::string gate = qwen ? "gate_proj" : "w1", up = qwen ? "up_proj" : "w3",
                      down = qwen ? "down_proj" : "w2";
    if (s.fused_experts) {
      tensors.push_back({moe + "experts.gate_up_proj", rnd({E, 2 * I, H}, 0.05)});
      tensors.push_back({moe + "experts.down_proj", rnd({E, H, I}, 0.05)});
    } else {
      for (int e = 0; e < E; ++e) {
        const std::string x = moe + "experts." + std::to_string(e) + ".";
        // A heavier tail in some experts makes shared and per-expert amax differ.
        const double scale = 0.05 * (1.0 + (e % 3));
        tensors.push_back({x + gate + ".weight", rnd({I, H}, scale)});
        tensors.push_back({x + up + ".weight", rnd({I, H}, scale)});
        tensors.push_back({x + down + ".weight", rnd({H, I}, scale)});
      }
    }
  }
  tensors.push_back({"model.norm.weight", at::ones({H}).to(at::kBFloat16)});
  tensors.push_back({"lm_head.weight", rnd({s.vocab, H}, 0.02)});

  const size_t per_shard = (tensors.size() + s.shards - 1) / s.shards;
  std::map<std::string, std::string> weight_map;
  uint64_t total = 0;
  for (int k = 0; k < s.shards; ++k) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "model-%05d-of-%05d.safetensors", k + 1, s.shards);
    const std::string file = s.shards == 1 ? "model.safetensors" : buf;
    const size_t begin = k * per_shard, end = std::min(tensors.size(), begin + per_shard);
    std::vector<io::TensorSpec> specs;
    for (size_t i = begin; i < end; ++i)
      specs.push_back({tensors[i].name, DType::kBF16, tensors[i].value.sizes().vec()});
    io::SafetensorsWriter w(dir + "/" + file, specs, {{"format", "pt"}});
    for (size_t i = begin; i < end; ++i) {
      const uint64_t n = tensors[i].value.numel() * 2;
      w.write(tensors[i].name, tensors[i].value.data_ptr(), n);
      weight_map[tensors[i].name] = file;
      total += n;
    }
    w.finish();
  }
  if (s.shards > 1) io::write_index(dir + "/model.safetensors.index.json", total, weight_map);
  write_text_file(dir + "/config.json", make_config(s).dump(2) + "\n");
}

}  // namespace moequant
