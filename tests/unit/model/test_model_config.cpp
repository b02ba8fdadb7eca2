// config.json reading and Hugging Face naming, per family: the fixtures' configs, dense layers
// (mlp_only_layers / decoder_sparse_step), where a tensor belongs, which tensors are routed
// experts, and errors naming the file and the key.
#include <gtest/gtest.h>

#include <cmath>

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

nlohmann::json qwen3(int layers) {
  return {{"model_type", "qwen3_moe"}, {"num_hidden_layers", layers}, {"num_experts", 8},
          {"hidden_size", 64},         {"moe_intermediate_size", 32}, {"intermediate_size", 128},
          {"norm_topk_prob", true}};
}

TEST(ModelConfig, FixturesGiveTheirFamilyDimsAndNames) {
  const ModelConfig q = read_model_config(kFixtures + "/qwen3moe");
  EXPECT_EQ(q.model_type, "qwen3_moe");
  EXPECT_EQ(q.num_layers, 2);
  EXPECT_EQ(q.num_experts, 8);
  EXPECT_EQ(q.hidden, 64);
  EXPECT_EQ(q.intermediate, 32);
  EXPECT_EQ(q.moe_layers, (std::vector<int>{0, 1}));
  EXPECT_EQ(q.expert_weight_name(1, 7, ExpertProj::kUp),
            "model.layers.1.mlp.experts.7.up_proj.weight");
  EXPECT_EQ(q.router_module(0), "model.layers.0.mlp.gate");
  EXPECT_EQ(q.experts_in_block(), "mlp.experts");
  EXPECT_TRUE(decoder_config(q).qk_norm);
  EXPECT_FALSE(decoder_config(q).normalize_topk);  // the fixture's norm_topk_prob is false

  const ModelConfig m = read_model_config(kFixtures + "/mixtral");
  EXPECT_EQ(m.num_experts, 4);
  EXPECT_EQ(m.intermediate, 32);
  EXPECT_EQ(m.expert_module_name(0, 3, ExpertProj::kGate),
            "model.layers.0.block_sparse_moe.experts.3.w1");
  EXPECT_EQ(m.proj_name(ExpertProj::kUp), "w3");
  EXPECT_EQ(m.proj_name(ExpertProj::kDown), "w2");
  EXPECT_EQ(m.fused_gate_up_name(1), "model.layers.1.block_sparse_moe.experts.gate_up_proj");
  EXPECT_EQ(m.experts_in_block(), "block_sparse_moe.experts");
  EXPECT_TRUE(decoder_config(m).normalize_topk);

  const ModelConfig q2 = read_model_config(kFixtures + "/qwen2_moe");
  EXPECT_EQ(q2.family->shared_expert(1), "model.layers.1.mlp.shared_expert");
  EXPECT_EQ(q2.family->shared_expert_gate(1), "model.layers.1.mlp.shared_expert_gate");
  EXPECT_TRUE(decoder_config(q2).qkv_bias);
  EXPECT_EQ(decoder_config(q2).shared_intermediate, 32);
  EXPECT_TRUE(decoder_config(q2).shared_expert_gate);
}

TEST(ModelConfig, DenseLayersFollowMlpOnlyLayersAndSparseStep) {
  nlohmann::json c = qwen3(6);
  c["mlp_only_layers"] = {0, 3};
  EXPECT_EQ(parse_model_config(c, "", "c").moe_layers, (std::vector<int>{1, 2, 4, 5}));
  c["mlp_only_layers"] = nlohmann::json::array();
  c["decoder_sparse_step"] = 2;  // layers 1, 3, 5 are MoE
  EXPECT_EQ(parse_model_config(c, "", "c").moe_layers, (std::vector<int>{1, 3, 5}));
  c["mlp_only_layers"] = {1, 3, 5};
  EXPECT_NE(error_of([&] { parse_model_config(c, "", "cfg.json"); }).find("no layer has routed"),
            std::string::npos);
}

TEST(ModelConfig, TensorsArePlacedBeforeInOrAfterTheLayers) {
  const ModelConfig q = parse_model_config(qwen3(2), "", "c");
  EXPECT_EQ(q.place_of("model.embed_tokens.weight").kind, TensorPlace::kBeforeLayers);
  const TensorPlace p = q.place_of("model.layers.12.self_attn.q_proj.weight");
  EXPECT_EQ(p.kind, TensorPlace::kLayer);
  EXPECT_EQ(p.layer, 12);
  EXPECT_EQ(q.place_of("model.norm.weight").kind, TensorPlace::kAfterLayers);
  EXPECT_EQ(q.place_of("lm_head.weight").kind, TensorPlace::kAfterLayers);
  EXPECT_EQ(q.place_of("model.layers.x.foo").kind, TensorPlace::kAfterLayers);
  EXPECT_TRUE(ModelConfig::is_embedding("model.embed_tokens.weight"));
  EXPECT_FALSE(ModelConfig::is_embedding("lm_head.weight"));
}

TEST(ModelConfig, RoutedExpertTensorsAreToldFromSharedExpertsAndRouters) {
  const ModelConfig q = parse_model_config(qwen3(2), "", "c");
  int layer = -1, expert = -1;
  EXPECT_TRUE(
      q.is_routed_expert_tensor("model.layers.1.mlp.experts.7.down_proj.weight", &layer, &expert));
  EXPECT_EQ(layer, 1);
  EXPECT_EQ(expert, 7);
  EXPECT_TRUE(
      q.is_routed_expert_tensor("model.layers.0.mlp.experts.gate_up_proj", &layer, &expert));
  EXPECT_EQ(expert, -1);
  EXPECT_FALSE(q.is_routed_expert_tensor("model.layers.1.mlp.gate.weight"));
  EXPECT_FALSE(q.is_routed_expert_tensor("model.layers.1.mlp.shared_expert.gate_proj.weight"));
  EXPECT_FALSE(q.is_routed_expert_tensor("model.layers.1.mlp.shared_expert_gate.weight"));
  EXPECT_FALSE(q.is_routed_expert_tensor("model.layers.1.mlp.experts_x.0.weight"));
  EXPECT_FALSE(q.is_routed_expert_tensor("lm_head.weight"));
}

TEST(ModelConfig, BadConfigsNameTheFileAndTheKey) {
  nlohmann::json c = qwen3(2);
  c["model_type"] = "llama";
  std::string e = error_of([&] { parse_model_config(c, "", "m/config.json"); });
  EXPECT_NE(e.find("m/config.json: unsupported model_type 'llama'"), std::string::npos) << e;
  EXPECT_NE(e.find("mixtral, olmoe, qwen2_moe"), std::string::npos) << e;
  c = qwen3(2);
  c.erase("moe_intermediate_size");
  e = error_of([&] { parse_model_config(c, "", "m/config.json"); });
  EXPECT_NE(e.find("missing 'moe_intermediate_size'"), std::string::npos) << e;
  c = qwen3(2);
  c["num_experts"] = -3;
  e = error_of([&] { parse_model_config(c, "", "m/config.json"); });
  EXPECT_NE(e.find("'num_experts' is -3, expected an integer in 1 .. 65536"), std::string::npos)
      << e;
  e = error_of([&] { read_model_config(kFixtures + "/no-such-model"); });
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
}

TEST(ModelConfig, CountsAreReadAs64BitAndRangeChecked) {
  // Values that used to be truncated to 32 bits: 2^32 + 8 experts ran as 8.
  nlohmann::json c = qwen3(2);
  c["num_experts"] = (int64_t{1} << 32) + 8;
  std::string e = error_of([&] { parse_model_config(c, "", "m/config.json"); });
  EXPECT_NE(e.find("m/config.json: 'num_experts' is 4294967304"), std::string::npos) << e;
  c = qwen3(2);
  c["num_hidden_layers"] = (int64_t{1} << 32) + 2;
  e = error_of([&] { parse_model_config(c, "", "m/config.json"); });
  EXPECT_NE(e.find("'num_hidden_layers' is 4294967298"), std::string::npos) << e;
  c = qwen3(2);
  c["num_hidden_layers"] = 1000000000;  // once a 2.2 GB allocation, then std::bad_alloc
  e = error_of([&] { parse_model_config(c, "", "m/config.json"); });
  EXPECT_NE(e.find("'num_hidden_layers' is 1000000000, expected an integer in 1 .. 4096"),
            std::string::npos)
      << e;
  c = qwen3(4);
  c["decoder_sparse_step"] = int64_t{1} << 40;  // once read as 1
  e = error_of([&] { parse_model_config(c, "", "m/config.json"); });
  EXPECT_NE(e.find("'decoder_sparse_step' is 1099511627776"), std::string::npos) << e;
  c = qwen3(2);
  c["num_experts"] = 18446744073709551615ull;  // beyond int64: read as unsigned
  e = error_of([&] { parse_model_config(c, "", "m/config.json"); });
  EXPECT_NE(e.find("'num_experts' is 18446744073709551615"), std::string::npos) << e;
  c = qwen3(2);
  c["hidden_size"] = 64.5;
  e = error_of([&] { parse_model_config(c, "", "m/config.json"); });
  EXPECT_NE(e.find("'hidden_size' is 64.5"), std::string::npos) << e;
}

TEST(ModelConfig, DeepseekV3FixtureIsReadWithItsMlaAndGroupedRouter) {
  const ModelConfig c = read_model_config(kFixtures + "/deepseek_v3");
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.intermediate, 32);
  EXPECT_EQ(c.moe_layers, (std::vector<int>{1, 2}));  // first_k_dense_replace 1
  EXPECT_EQ(c.extra_layers, 1);                       // num_nextn_predict_layers
  EXPECT_EQ(c.source.format, SourceFormat::kPlain);
  EXPECT_EQ(c.family->shared_expert(1), "model.layers.1.mlp.shared_experts");
  const DecoderConfig d = decoder_config(c);
  EXPECT_EQ(d.attention, AttentionKind::kMla);
  EXPECT_EQ(d.mla.q_lora_rank, 32);
  EXPECT_EQ(d.mla.kv_lora_rank, 16);
  EXPECT_EQ(d.mla.qk_head_dim(), 16);
  EXPECT_EQ(d.rope.dim, 8);
  EXPECT_TRUE(d.rope.interleaved);
  EXPECT_EQ(d.router, RouterKind::kSigmoidGroupedTopK);
  EXPECT_EQ(d.n_group, 2);
  EXPECT_EQ(d.topk_group, 1);
  EXPECT_DOUBLE_EQ(d.routed_scaling, 2.5);
  EXPECT_EQ(d.shared_intermediate, 32);
  EXPECT_FALSE(d.shared_expert_gate);
  EXPECT_DOUBLE_EQ(d.softmax_scale, 0.25);  // 1 / sqrt(8 + 8)
  // The tensors the config implies: the dense layer 0 and the MoE layer 1.
  const TensorSet dense = layer_tensors(c, d, 0), moe = layer_tensors(c, d, 1);
  EXPECT_EQ(dense.get(TensorUse::kDenseUp).shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(dense.find(TensorUse::kRouter), nullptr);
  EXPECT_EQ(moe.get(TensorUse::kKVB).name, "model.layers.1.self_attn.kv_b_proj.weight");
  EXPECT_EQ(moe.get(TensorUse::kKVB).shape, (std::vector<int64_t>{4 * (8 + 16), 16}));
  EXPECT_EQ(moe.get(TensorUse::kKVA).shape, (std::vector<int64_t>{16 + 8, 64}));
  EXPECT_EQ(moe.get(TensorUse::kRouterBias).name,
            "model.layers.1.mlp.gate.e_score_correction_bias");
  EXPECT_EQ(moe.get(TensorUse::kSharedDown).shape, (std::vector<int64_t>{64, 32}));
  // The MTP layer 3 (past the 3 decoder layers): a MoE layer plus its own head.
  const TensorSet mtp = layer_tensors(c, d, 3);
  EXPECT_EQ(mtp.get(TensorUse::kMtpEhProj).shape, (std::vector<int64_t>{64, 128}));
  EXPECT_NE(mtp.find(TensorUse::kRouter), nullptr);
  EXPECT_FALSE(c.is_routed_expert_tensor("model.layers.3.mlp.experts.0.up_proj.weight"));
  EXPECT_TRUE(c.holds_layer(3));
  EXPECT_FALSE(c.holds_layer(4));
}

TEST(ModelConfig, Glm4MoeFixtureHasPartialRotaryAndQkNorm) {
  const ModelConfig c = read_model_config(kFixtures + "/glm4_moe");
  const DecoderConfig d = decoder_config(c);
  EXPECT_EQ(d.attention, AttentionKind::kGqa);
  EXPECT_EQ(d.head_dim, 16);
  EXPECT_EQ(d.rope.dim, 8);  // partial_rotary_factor 0.5
  EXPECT_FALSE(d.rope.interleaved);
  EXPECT_TRUE(d.qk_norm);
  EXPECT_FALSE(d.qkv_bias);  // the fixture's attention_bias is false
  EXPECT_EQ(d.router, RouterKind::kSigmoidGroupedTopK);
  EXPECT_EQ(c.moe_layers, (std::vector<int>{1, 2}));
  EXPECT_EQ(layer_tensors(c, d, 1).get(TensorUse::kQNorm).shape, (std::vector<int64_t>{16}));
}

TEST(ModelConfig, KimiK2IsReadAsDeepseekOnlyWithItsArchitecture) {
  nlohmann::json c = read_model_config(kFixtures + "/deepseek_v3").raw;
  c["model_type"] = "kimi_k2";
  EXPECT_EQ(parse_model_config(c, "", "c").num_experts, 8);
  c["architectures"] = {"KimiK2ForCausalLM"};
  EXPECT_NE(error_of([&] { parse_model_config(c, "", "k/config.json"); })
                .find("kimi_k2 is read as DeepSeek-V3 only when 'architectures' names "
                      "DeepseekV3ForCausalLM"),
            std::string::npos);
}

TEST(ModelConfig, SourceQuantizationFp8BlocksOrARefusalByName) {
  nlohmann::json c = read_model_config(kFixtures + "/deepseek_v3").raw;
  c["quantization_config"] = {{"quant_method", "fp8"},
                              {"fmt", "e4m3"},
                              {"activation_scheme", "dynamic"},
                              {"weight_block_size", {128, 128}}};
  const ModelConfig fp8 = parse_model_config(c, "", "c");
  EXPECT_EQ(fp8.source.format, SourceFormat::kFp8Block);
  EXPECT_EQ(fp8.source.block_rows, 128);
  c["quantization_config"] = {{"quant_method", "modelopt"}, {"quant_algo", "NVFP4"}};
  EXPECT_NE(error_of([&] { parse_model_config(c, "", "s/config.json"); })
                .find("s/config.json: the source is already quantized (quantization_config "
                      "quant_method 'modelopt')"),
            std::string::npos);
  c["quantization_config"] = {{"quant_method", "fp8"}, {"weight_block_size", {64, 64}}};
  EXPECT_NE(error_of([&] {
              parse_model_config(c, "", "s/config.json");
            }).find("weight_block_size [64,64] is not read"),
            std::string::npos);
  c["quantization_config"] = {{"quant_method", "fp8"}};
  EXPECT_NE(error_of([&] {
              parse_model_config(c, "", "s/config.json");
            }).find("without weight_block_size"),
            std::string::npos);
}

TEST(ModelConfig, YarnRopeIsReadFromRopeScaling) {
  nlohmann::json c = read_model_config(kFixtures + "/deepseek_v3").raw;
  c.erase("rope_parameters");
  c["rope_theta"] = 10000;
  c["rope_scaling"] = {{"type", "yarn"},
                       {"factor", 40},
                       {"mscale", 1.0},
                       {"mscale_all_dim", 1.0},
                       {"original_max_position_embeddings", 4096},
                       {"beta_fast", 32},
                       {"beta_slow", 1}};
  const DecoderConfig d = decoder_config(parse_model_config(c, "", "c"));
  EXPECT_DOUBLE_EQ(d.rope.yarn_factor, 40.0);
  EXPECT_EQ(d.rope.yarn_original_max_positions, 4096);
  EXPECT_DOUBLE_EQ(d.rope.attention_factor, 1.0);  // mscale / mscale_all_dim
  const double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(d.softmax_scale, 0.25 * m * m, 1e-15);
  c["rope_scaling"]["type"] = "longrope";
  EXPECT_NE(error_of([&] {
              decoder_config(parse_model_config(c, "", "c"));
            }).find("rope_type 'longrope' is not supported"),
            std::string::npos);
}

}  // namespace
}  // namespace moequant
