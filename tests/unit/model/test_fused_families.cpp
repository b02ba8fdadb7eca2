// The fused and hybrid families (GPT-OSS, OLMoE, Llama-4, Qwen3-Next, Qwen3.5-MoE) on their
// fixtures: names (the Qwen3.5 wrapper's model.language_model.* included), the fused layout on
// disk, the per-layer mixers, and the tensors each layer's config implies, with the shapes the
// fixtures written by transformers hold.
#include <gtest/gtest.h>

#include "moequant/common/error.h"
#include "moequant/model/decoder_config.h"
#include "moequant/model/model_config.h"
#include "moequant/model/model_tensors.h"

namespace moequant {
namespace {

const std::string kFixtures = MOEQUANT_TEST_DATA "/hf";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(FusedFamilies, GptOssRouterSinksBiasesAndInterleavedExperts) {
  const ModelConfig c = read_model_config(kFixtures + "/gpt_oss");
  EXPECT_EQ(c.num_experts, 4);
  EXPECT_EQ(c.intermediate, 32);
  EXPECT_EQ(c.router_module(1), "model.layers.1.mlp.router");
  EXPECT_TRUE(c.family->fused_layout().transposed);
  EXPECT_TRUE(c.family->fused_layout().interleaved);
  const DecoderConfig d = decoder_config(c);
  EXPECT_EQ(d.mixer(0), LayerMixer::kSlidingAttention);
  EXPECT_EQ(d.mixer(1), LayerMixer::kFullAttention);
  EXPECT_EQ(d.sliding_window, 128);
  EXPECT_EQ(d.router, RouterKind::kTopKSoftmax);
  EXPECT_EQ(d.activation, ExpertActivation::kClampedSwiGlu);
  EXPECT_DOUBLE_EQ(d.activation_limit, 7.0);
  const TensorSet t = layer_tensors(c, d, 0);
  EXPECT_EQ(t.get(TensorUse::kSinks).name, "model.layers.0.self_attn.sinks");
  EXPECT_EQ(t.get(TensorUse::kSinks).shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(t.get(TensorUse::kOBias).shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(t.get(TensorUse::kRouterLinearBias).name, "model.layers.0.mlp.router.bias");
  EXPECT_EQ(t.get(TensorUse::kExpertGateUpBias).name,
            "model.layers.0.mlp.experts.gate_up_proj_bias");
  EXPECT_EQ(t.get(TensorUse::kExpertGateUpBias).shape, (std::vector<int64_t>{4, 64}));
  EXPECT_EQ(t.get(TensorUse::kExpertDownBias).shape, (std::vector<int64_t>{4, 64}));
  // The MXFP4 release's blocks and scales are routed-expert tensors; the biases are carried over.
  EXPECT_TRUE(c.is_routed_expert_tensor("model.layers.1.mlp.experts.gate_up_proj_blocks"));
  EXPECT_TRUE(c.is_routed_expert_tensor("model.layers.1.mlp.experts.down_proj_scales"));
  EXPECT_FALSE(c.is_routed_expert_tensor("model.layers.1.mlp.experts.gate_up_proj_bias"));
}

TEST(FusedFamilies, OlmoeNormsSpanTheWholeProjection) {
  const ModelConfig c = read_model_config(kFixtures + "/olmoe");
  const DecoderConfig d = decoder_config(c);
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_FALSE(d.normalize_topk);
  const TensorSet t = layer_tensors(c, d, 1);
  EXPECT_EQ(t.get(TensorUse::kQNorm).shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(t.get(TensorUse::kKNorm).shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(t.get(TensorUse::kRouter).name, "model.layers.1.mlp.gate.weight");
}

TEST(FusedFamilies, Llama4FeedForwardNamesAndFusedHalves) {
  const ModelConfig c = read_model_config(kFixtures + "/llama4_text");
  EXPECT_EQ(c.moe_layers, (std::vector<int>{0, 1}));
  EXPECT_EQ(c.experts_prefix(1), "model.layers.1.feed_forward.experts");
  EXPECT_EQ(c.router_module(0), "model.layers.0.feed_forward.router");
  EXPECT_EQ(c.fused_gate_up_name(0), "model.layers.0.feed_forward.experts.gate_up_proj");
  EXPECT_TRUE(c.family->fused_layout().transposed);
  EXPECT_FALSE(c.family->fused_layout().interleaved);
  const DecoderConfig d = decoder_config(c);
  EXPECT_EQ(d.mixer(0), LayerMixer::kChunkedAttention);
  EXPECT_EQ(d.chunk_size, 8);
  const TensorSet t = layer_tensors(c, d, 0);
  EXPECT_EQ(t.get(TensorUse::kSharedGate).name,
            "model.layers.0.feed_forward.shared_expert.gate_proj.weight");
  // A dense Llama-4 layer's MLP is feed_forward.* of intermediate_size_mlp.
  nlohmann::json raw = c.raw;
  raw["moe_layers"] = {1};
  const ModelConfig dense = parse_model_config(raw, "", "config.json");
  const TensorSet t0 = layer_tensors(dense, decoder_config(dense), 0);
  EXPECT_EQ(t0.get(TensorUse::kDenseUp).name, "model.layers.0.feed_forward.up_proj.weight");
  EXPECT_EQ(t0.get(TensorUse::kDenseUp).shape, (std::vector<int64_t>{64, 64}));
}

TEST(FusedFamilies, Qwen3NextLinearAndGatedFullAttentionLayers) {
  const ModelConfig c = read_model_config(kFixtures + "/qwen3_next");
  const DecoderConfig d = decoder_config(c);
  EXPECT_EQ(d.mixer(0), LayerMixer::kGatedDeltaNet);
  EXPECT_EQ(d.mixer(3), LayerMixer::kFullAttention);
  EXPECT_EQ(d.rope.dim, 4);  // partial_rotary_factor 0.25 of 16
  const TensorSet linear = layer_tensors(c, d, 0);
  EXPECT_EQ(linear.find(TensorUse::kQ), nullptr);
  EXPECT_EQ(linear.get(TensorUse::kLinearQkvz).shape, (std::vector<int64_t>{192, 64}));
  EXPECT_EQ(linear.get(TensorUse::kLinearConv).shape, (std::vector<int64_t>{128, 1, 4}));
  EXPECT_EQ(linear.get(TensorUse::kSharedExpertGate).name,
            "model.layers.0.mlp.shared_expert_gate.weight");
  const TensorSet full = layer_tensors(c, d, 3);
  EXPECT_EQ(full.get(TensorUse::kQ).shape, (std::vector<int64_t>{128, 64}));  // query and gate
  EXPECT_EQ(full.get(TensorUse::kQNorm).shape, (std::vector<int64_t>{16}));
  EXPECT_EQ(full.find(TensorUse::kLinearOut), nullptr);
}

TEST(FusedFamilies, Qwen35SplitProjectionsAndTheMultimodalWrapper) {
  const ModelConfig text = read_model_config(kFixtures + "/qwen3_5_moe_text");
  const DecoderConfig d = decoder_config(text);
  EXPECT_EQ(layer_tensors(text, d, 1).get(TensorUse::kLinearQkv).shape,
            (std::vector<int64_t>{128, 64}));
  EXPECT_EQ(layer_tensors(text, d, 1).get(TensorUse::kLinearZ).shape,
            (std::vector<int64_t>{64, 64}));
  // The release: the same keys under text_config, the tensors under model.language_model.
  const nlohmann::json wrapper = {{"model_type", "qwen3_5_moe"},
                                  {"architectures", {"Qwen3_5MoeForConditionalGeneration"}},
                                  {"text_config", text.raw},
                                  {"vision_config", {{"depth", 2}}}};
  const ModelConfig w = parse_model_config(wrapper, "", "config.json");
  EXPECT_EQ(w.num_layers, 4);
  EXPECT_EQ(w.fused_gate_up_name(2), "model.language_model.layers.2.mlp.experts.gate_up_proj");
  EXPECT_EQ(w.place_of("model.language_model.layers.2.linear_attn.A_log").layer, 2);
  EXPECT_EQ(w.place_of("model.language_model.embed_tokens.weight").kind,
            TensorPlace::kBeforeLayers);
  EXPECT_EQ(w.place_of("model.visual.blocks.0.attn.qkv.weight").kind, TensorPlace::kAfterLayers);
  EXPECT_EQ(w.place_of("mtp.layers.0.mlp.gate.weight").kind, TensorPlace::kAfterLayers);
  EXPECT_TRUE(ModelConfig::is_embedding("model.language_model.embed_tokens.weight"));
  EXPECT_FALSE(w.is_routed_expert_tensor("model.layers.2.mlp.experts.gate_up_proj"));
  const TensorSet ends = end_tensors(w, decoder_config(w));
  EXPECT_EQ(ends.get(TensorUse::kEmbed).name, "model.language_model.embed_tokens.weight");
  EXPECT_EQ(ends.get(TensorUse::kLmHead).name, "lm_head.weight");
  nlohmann::json bare = wrapper;
  bare.erase("text_config");
  EXPECT_NE(error_of([&] { parse_model_config(bare, "", "config.json"); })
                .find("config.json: model_type qwen3_5_moe is the multimodal wrapper, whose text "
                      "model's keys belong under 'text_config', which is missing"),
            std::string::npos);
}

TEST(FusedFamilies, LayerTypesOfTheWrongLengthOrKindAreNamed) {
  nlohmann::json raw = read_model_config(kFixtures + "/gpt_oss").raw;
  raw["layer_types"] = {"full_attention"};
  const ModelConfig short_types = parse_model_config(raw, "", "config.json");
  EXPECT_NE(error_of([&] {
              decoder_config(short_types);
            }).find("'layer_types' must list one type per layer (2)"),
            std::string::npos);
  raw["layer_types"] = {"full_attention", "mamba"};
  const ModelConfig unknown = parse_model_config(raw, "", "config.json");
  EXPECT_NE(error_of([&] { decoder_config(unknown); }).find("layer_types holds 'mamba'"),
            std::string::npos);
}

}  // namespace
}  // namespace moequant
