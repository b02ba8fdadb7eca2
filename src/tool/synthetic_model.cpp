#include "synthetic_model.h"

#include <ATen/ATen.h>
#include <sys/statvfs.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>

#include "moequant/common/error.h"
#include "moequant/common/interrupt_cleanup.h"
#include "moequant/common/machine_memory.h"
#include "moequant/export/output_folder.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/io/safetensors.h"

namespace moequant {

namespace {

// A tensor to write: its name and shape up front (the shard headers need them), its values made
// only when written, so that a large model is generated with one tensor in memory.
struct PlannedWeight {
  std::string name;
  std::vector<int64_t> shape;
  std::function<at::Tensor()> make;  // bf16, contiguous
};

int64_t head_dim_of(const SyntheticModelSpec& s) {
  return s.head_dim > 0 ? s.head_dim : s.hidden / s.heads;
}

int64_t dense_intermediate_of(const SyntheticModelSpec& s) {
  return s.dense_intermediate > 0 ? s.dense_intermediate : 4 * s.intermediate;
}

bool is_dense(const SyntheticModelSpec& s, int layer) {
  return std::find(s.dense_layers.begin(), s.dense_layers.end(), layer) != s.dense_layers.end();
}

nlohmann::json make_config(const SyntheticModelSpec& s) {
  const bool mixtral = s.model_type == "mixtral";
  const char* arch = mixtral                       ? "MixtralForCausalLM"
                     : s.model_type == "qwen2_moe" ? "Qwen2MoeForCausalLM"
                                                   : "Qwen3MoeForCausalLM";
  nlohmann::json c = {
      {"architectures", {arch}},
      {"model_type", s.model_type},
      {"hidden_size", s.hidden},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads},
      {"head_dim", head_dim_of(s)},
      {"vocab_size", s.vocab},
      {"num_experts_per_tok", s.top_k},
      {"hidden_act", "silu"},
      {"rms_norm_eps", 1e-6},
      {"rope_parameters", {{"rope_theta", mixtral ? 1e6 : 1e4}, {"rope_type", "default"}}},
      {"max_position_embeddings", 4096},
      {"tie_word_embeddings", false},
      {"attention_bias", false},
      {"dtype", "bfloat16"}};
  if (mixtral) {
    c["num_local_experts"] = s.experts;
    c["intermediate_size"] = s.intermediate;
  } else {
    c["num_experts"] = s.experts;
    c["moe_intermediate_size"] = s.intermediate;
    c["intermediate_size"] = dense_intermediate_of(s);
    c["decoder_sparse_step"] = 1;
    c["mlp_only_layers"] = s.dense_layers;
    c["norm_topk_prob"] = s.model_type == "qwen3_moe";
  }
  if (s.model_type == "qwen2_moe") {
    c["shared_expert_intermediate_size"] = dense_intermediate_of(s);
    c["qkv_bias"] = true;
  }
  return c;
}

std::vector<PlannedWeight> plan_weights(const SyntheticModelSpec& s) {
  const bool mixtral = s.model_type == "mixtral", qwen3 = s.model_type == "qwen3_moe",
             qwen2 = s.model_type == "qwen2_moe";
  const int64_t H = s.hidden, I = s.intermediate, E = s.experts, D = head_dim_of(s);
  const int64_t q_out = s.heads * D, kv_out = s.kv_heads * D, dense_i = dense_intermediate_of(s);
  std::vector<PlannedWeight> w;
  // Linear weights scaled by 1/sqrt(in) keep activations of order one through the layers.
  auto linear = [&](const std::string& name, int64_t out, int64_t in, double gain = 1.0) {
    w.push_back({name, {out, in}, [=] {
                   return (at::randn({out, in}) * (gain / std::sqrt(static_cast<double>(in))))
                       .to(at::kBFloat16)
                       .contiguous();
                 }});
  };
  auto vector = [&](const std::string& name, int64_t n, double mean, double spread) {
    w.push_back({name, {n}, [=] {
                   return (at::randn({n}) * spread + mean).to(at::kBFloat16).contiguous();
                 }});
  };
  linear("model.embed_tokens.weight", s.vocab, H, 0.02 * std::sqrt(static_cast<double>(H)));
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    vector(p + "input_layernorm.weight", H, 1.0, 0.1);
    vector(p + "post_attention_layernorm.weight", H, 1.0, 0.1);
    linear(p + "self_attn.q_proj.weight", q_out, H);
    linear(p + "self_attn.k_proj.weight", kv_out, H);
    linear(p + "self_attn.v_proj.weight", kv_out, H);
    if (qwen2) {
      vector(p + "self_attn.q_proj.bias", q_out, 0.0, 0.1);
      vector(p + "self_attn.k_proj.bias", kv_out, 0.0, 0.1);
      vector(p + "self_attn.v_proj.bias", kv_out, 0.0, 0.1);
    }
    linear(p + "self_attn.o_proj.weight", H, q_out);
    if (qwen3) {
      vector(p + "self_attn.q_norm.weight", D, 1.0, 0.1);
      vector(p + "self_attn.k_norm.weight", D, 1.0, 0.1);
    }
    if (!mixtral && is_dense(s, l)) {
      linear(p + "mlp.gate_proj.weight", dense_i, H);
      linear(p + "mlp.up_proj.weight", dense_i, H);
      linear(p + "mlp.down_proj.weight", H, dense_i);
      continue;
    }
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    linear(moe + "gate.weight", E, H);
    const std::string gate = mixtral ? "w1" : "gate_proj", up = mixtral ? "w3" : "up_proj",
                      down = mixtral ? "w2" : "down_proj";
    if (s.fused_experts) {
      w.push_back({moe + "experts.gate_up_proj", {E, 2 * I, H}, [=] {
                     return (at::randn({E, 2 * I, H}) * 0.05).to(at::kBFloat16).contiguous();
                   }});
      w.push_back({moe + "experts.down_proj", {E, H, I}, [=] {
                     return (at::randn({E, H, I}) * 0.05).to(at::kBFloat16).contiguous();
                   }});
    } else {
      for (int e = 0; e < E; ++e) {
        const std::string x = moe + "experts." + std::to_string(e) + ".";
        // A heavier tail in some experts makes shared and per-expert amax differ.
        const double gain = 0.5 * (1.0 + (e % 3));
        linear(x + gate + ".weight", I, H, gain);
        linear(x + up + ".weight", I, H, gain);
        linear(x + down + ".weight", H, I, gain);
      }
    }
    if (qwen2) {
      linear(moe + "shared_expert.gate_proj.weight", dense_i, H);
      linear(moe + "shared_expert.up_proj.weight", dense_i, H);
      linear(moe + "shared_expert.down_proj.weight", H, dense_i);
      linear(moe + "shared_expert_gate.weight", 1, H);
    }
  }
  vector("model.norm.weight", H, 1.0, 0.1);
  linear("lm_head.weight", s.vocab, H);
  return w;
}

// The sizes the flags ask for must fit: the files on the disk, the largest tensor (generated in
// float32, then converted) in memory, and at least one tensor per shard. In double: huge flags
// must not wrap.
void check_fits(const std::string& dir, const SyntheticModelSpec& s,
                const std::vector<PlannedWeight>& weights) {
  MQ_CHECK(static_cast<size_t>(s.shards) <= weights.size(), "generate: --shards ", s.shards,
           " exceeds the ", weights.size(), " tensors of the model");
  double total = 0, largest = 0;
  for (const PlannedWeight& w : weights) {
    double n = 2;  // bf16
    for (int64_t d : w.shape) n *= static_cast<double>(d);
    total += n;
    largest = std::max(largest, n);
  }
  const std::string flags = "--layers, --experts, --hidden, --intermediate, --vocab, --heads";
  const std::filesystem::path parent = std::filesystem::absolute(dir).parent_path();
  struct statvfs fs {};
  if (::statvfs(parent.c_str(), &fs) == 0) {
    const double free_bytes = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
    MQ_CHECK(total <= free_bytes, "generate: the model would take ", total, " bytes (", flags,
             "), more than the ", free_bytes, " bytes free in '", parent.string(), "'");
  }
  const double memory = static_cast<double>(physical_memory_bytes());
  MQ_CHECK(memory <= 0 || 3 * largest <= memory, "generate: its largest tensor would take ",
           largest, " bytes (", flags, "), too large for this machine's ", memory,
           " bytes of memory");
}

void write_weights(const std::string& dir, const SyntheticModelSpec& s,
                   const std::vector<PlannedWeight>& weights);

}  // namespace

void write_synthetic_model(const std::string& dir, const SyntheticModelSpec& s) {
  MQ_CHECK(s.model_type == "qwen3_moe" || s.model_type == "qwen2_moe" || s.model_type == "mixtral",
           "synthetic model: unknown model type '", s.model_type,
           "' (expected qwen3_moe, qwen2_moe or mixtral)");
  MQ_CHECK(s.layers > 0 && s.experts > 0 && s.hidden > 0 && s.intermediate > 0 && s.shards > 0 &&
               s.heads > 0 && s.kv_heads > 0 && s.vocab > 0 && s.top_k > 0,
           "synthetic model: sizes must be positive");
  MQ_CHECK(s.heads % s.kv_heads == 0, "synthetic model: ", s.heads,
           " attention heads are not a multiple of ", s.kv_heads, " key/value heads");
  MQ_CHECK(s.top_k <= s.experts, "synthetic model: top-k ", s.top_k, " exceeds ", s.experts,
           " experts");
  MQ_CHECK(s.head_dim > 0 || s.hidden % s.heads == 0, "synthetic model: hidden ", s.hidden,
           " is not a multiple of ", s.heads, " heads (give a head dim)");
  for (int l : s.dense_layers)
    MQ_CHECK(l >= 0 && l < s.layers && s.model_type != "mixtral", "synthetic model: dense layer ",
             l, " is not a layer of this ", s.model_type, " model");
  MQ_CHECK(!std::filesystem::exists(dir), "synthetic model: '", dir, "' already exists");
  const std::vector<PlannedWeight> weights = plan_weights(s);
  check_fits(dir, s, weights);
  std::filesystem::create_directories(dir);
  // Half-written, the folder would look like a checkpoint: it goes on failure or interruption.
  RemoveOnInterrupt on_interrupt(dir, "the half-written model folder");
  try {
    write_weights(dir, s, weights);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    throw;
  }
}

namespace {

void write_weights(const std::string& dir, const SyntheticModelSpec& s,
                   const std::vector<PlannedWeight>& weights) {
  at::manual_seed(s.seed);

  const size_t per_shard = (weights.size() + s.shards - 1) / s.shards;
  std::map<std::string, std::string> weight_map;
  uint64_t total = 0;
  for (int k = 0; k < s.shards; ++k) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "model-%05d-of-%05d.safetensors", k + 1, s.shards);
    const std::string file = s.shards == 1 ? "model.safetensors" : buf;
    const size_t begin = std::min(weights.size(), k * per_shard),
                 end = std::min(weights.size(), begin + per_shard);
    std::vector<io::TensorSpec> specs;
    for (size_t i = begin; i < end; ++i)
      specs.push_back({weights[i].name, DType::kBF16, weights[i].shape});
    io::SafetensorsWriter writer(dir + "/" + file, specs, {{"format", "pt"}});
    for (size_t i = begin; i < end; ++i) {
      const at::Tensor t = weights[i].make();
      const uint64_t n = static_cast<uint64_t>(t.numel()) * 2;
      writer.write(weights[i].name, t.data_ptr(), n);
      weight_map[weights[i].name] = file;
      total += n;
    }
    writer.finish();
  }
  if (s.shards > 1) io::write_index(dir + "/model.safetensors.index.json", total, weight_map);
  write_text_file(dir + "/config.json", make_config(s).dump(2) + "\n");
}

}  // namespace

}  // namespace moequant
