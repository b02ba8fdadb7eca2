// `moequant generate`: write a small synthetic Hugging Face MoE checkpoint (for tests,
// benchmarks and trying the tool without downloading a model).
#include <cstdio>

#include "commands.h"
#include "flag_checks.h"
#include "moequant/common/error.h"
#include "moequant/model/config_values.h"
#include "moequant/model/model_family.h"
#include "synthetic_model.h"

namespace moequant::tool {

CLI::App* add_generate_command(CLI::App& app, GenerateArgs& a) {
  CLI::App* c = app.add_subcommand(
      "generate",
      "Write a complete synthetic Hugging Face MoE checkpoint (every tensor of the family's "
      "model, random bf16 weights, seeded; optionally an FP8 block source as DeepSeek releases "
      "it): for tests, benchmarks and trying the tool");
  c->add_option("--out", a.out, "Output folder (must not exist)")->required();
  c->add_option("--model-type", a.model_type, "Model family")
      ->check(CLI::IsMember(supported_model_types()))
      ->capture_default_str();
  c->add_option("--layers", a.layers, "Decoder layers")
      ->check(positive_number())
      ->capture_default_str();
  c->add_option("--experts", a.experts, "Routed experts per layer")
      ->check(positive_number())
      ->capture_default_str();
  c->add_option("--hidden", a.hidden, "Hidden size H")
      ->check(positive_number())
      ->capture_default_str();
  c->add_option("--intermediate", a.intermediate, "Expert intermediate size I")
      ->check(positive_number())
      ->capture_default_str();
  c->add_option("--top-k", a.top_k, "Experts per token")
      ->check(positive_number())
      ->capture_default_str();
  c->add_option("--heads", a.heads, "Attention heads")
      ->check(positive_number())
      ->capture_default_str();
  c->add_option("--kv-heads", a.kv_heads, "Key/value heads (grouped-query attention)")
      ->check(positive_number())
      ->capture_default_str();
  c->add_option("--head-dim", a.head_dim, "Head dimension (default: hidden / heads)")
      ->check(positive_number());
  c->add_option("--vocab", a.vocab, "Vocabulary size")
      ->check(positive_number())
      ->capture_default_str();
  c->add_option("--dense-layers", a.dense_layers,
                "Layers with a dense MLP instead of experts (Qwen's mlp_only_layers, any; "
                "DeepSeek's and GLM's first_k_dense_replace, the first ones), e.g. 0,3")
      ->delimiter(',');
  c->add_option("--shards", a.shards, "Safetensors files (>1 writes an index)")
      ->check(positive_number())
      ->capture_default_str();
  c->add_flag("--fused", a.fused,
              "Store experts fused as 3-D gate_up_proj [E, 2I, H] and down_proj [E, H, I]");
  c->add_option("--source-dtype", a.source_dtype,
                "bf16; fp8: every decoder linear as F8_E4M3 128x128 blocks with its "
                "weight_scale_inv, as DeepSeek-V3/R1 and Kimi-K2 are released; mxfp4: the "
                "experts as MXFP4 blocks and scales, as GPT-OSS is released")
      ->check(CLI::IsMember({"bf16", "fp8", "mxfp4"}))
      ->capture_default_str();
  c->add_option("--dense-intermediate", a.dense_intermediate,
                "Width of the dense MLP layers and shared experts (default: 4 x intermediate)")
      ->check(positive_number());
  c->add_option("--mtp-layers", a.mtp_layers,
                "Multi-token-prediction layers past --layers, carried over unquantized "
                "(DeepSeek-V3 and GLM-4.5 families, 0 to 16; default: as released, 1)");
  c->add_option("--seed", a.seed, "Random seed")->capture_default_str();
  return c;
}

namespace {

// Sizes a config.json may hold (model/config_values.h), checked here so the error names the flag.
void check_flag_limits(const GenerateArgs& a) {
  const struct {
    const char* flag;
    int64_t value, max;
  } limits[] = {{"--layers", a.layers, kMaxLayers},
                {"--experts", a.experts, kMaxExperts},
                {"--hidden", a.hidden, kMaxWidth},
                {"--intermediate", a.intermediate, kMaxWidth},
                {"--top-k", a.top_k, kMaxExperts},
                {"--heads", a.heads, kMaxHeads},
                {"--kv-heads", a.kv_heads, kMaxHeads},
                {"--head-dim", a.head_dim, kMaxWidth},
                {"--vocab", a.vocab, kMaxVocab},
                {"--dense-intermediate", a.dense_intermediate, kMaxWidth}};
  for (const auto& l : limits)
    MQ_CHECK(l.value <= l.max, "generate: ", l.flag, " ", l.value,
             " exceeds the largest a config.json may hold (", l.max, ")");
  MQ_CHECK(a.mtp_layers == -1 || (a.mtp_layers >= 0 && a.mtp_layers <= 16),
           "generate: --mtp-layers ", a.mtp_layers,
           " is out of range: 0 to 16 (config.json's num_nextn_predict_layers)");
}

}  // namespace

int run_generate(const GenerateArgs& a) {
  check_flag_limits(a);
  SyntheticModelSpec spec;
  spec.model_type = a.model_type;
  spec.layers = a.layers;
  spec.experts = a.experts;
  spec.hidden = a.hidden;
  spec.intermediate = a.intermediate;
  spec.shards = a.shards;
  spec.top_k = a.top_k;
  spec.heads = a.heads;
  spec.kv_heads = a.kv_heads;
  spec.head_dim = a.head_dim;
  spec.vocab = a.vocab;
  spec.dense_layers = a.dense_layers;
  // GPT-OSS, Llama-4 and the Qwen3.5 wrapper are released with their experts fused.
  spec.fused_experts = a.fused || a.model_type == "gpt_oss" || a.model_type == "llama4_text" ||
                       a.model_type == "qwen3_5_moe";
  spec.fp8_source = a.source_dtype == "fp8";
  spec.mxfp4_source = a.source_dtype == "mxfp4";
  spec.dense_intermediate = a.dense_intermediate;
  spec.seed = a.seed;
  spec.mtp_layers = a.mtp_layers;
  write_synthetic_model(a.out, spec);
  std::printf(
      "wrote %s: %s, %d layers, %d experts, hidden %lld, expert intermediate %lld%s%s, %d "
      "shard(s)\n",
      a.out.c_str(), a.model_type.c_str(), a.layers, a.experts, static_cast<long long>(a.hidden),
      static_cast<long long>(a.intermediate), spec.fused_experts ? " (fused experts)" : "",
      a.source_dtype == "fp8"     ? ", fp8 block source"
      : a.source_dtype == "mxfp4" ? ", mxfp4 experts"
                                  : "",
      a.shards);
  return 0;
}

}  // namespace moequant::tool
