// config.json reading and Hugging Face naming, per family: the fixtures' configs, dense layers
// (mlp_only_layers / decoder_sparse_step), where a tensor belongs, which tensors are routed
// experts, and errors naming the file and the key.
#include <gtest/gtest.h>

#include "moequant/common/error.h"
#include "moequant/model/model_config.h"

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
  EXPECT_TRUE(q.family->qk_norm());
  EXPECT_FALSE(q.family->normalize_topk(q.raw));  // the fixture's norm_topk_prob is false

  const ModelConfig m = read_model_config(kFixtures + "/mixtral");
  EXPECT_EQ(m.num_experts, 4);
  EXPECT_EQ(m.intermediate, 32);
  EXPECT_EQ(m.expert_module_name(0, 3, ExpertProj::kGate),
            "model.layers.0.block_sparse_moe.experts.3.w1");
  EXPECT_EQ(m.proj_name(ExpertProj::kUp), "w3");
  EXPECT_EQ(m.proj_name(ExpertProj::kDown), "w2");
  EXPECT_EQ(m.fused_gate_up_name(1), "model.layers.1.block_sparse_moe.experts.gate_up_proj");
  EXPECT_EQ(m.experts_in_block(), "block_sparse_moe.experts");
  EXPECT_TRUE(m.family->normalize_topk(m.raw));

  const ModelConfig q2 = read_model_config(kFixtures + "/qwen2_moe");
  EXPECT_EQ(q2.family->shared_expert(1), "model.layers.1.mlp.shared_expert");
  EXPECT_EQ(q2.family->shared_expert_gate(1), "model.layers.1.mlp.shared_expert_gate");
  EXPECT_TRUE(q2.family->qkv_bias());
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
  EXPECT_NE(e.find("mixtral, qwen2_moe, qwen3_moe"), std::string::npos) << e;
  c = qwen3(2);
  c.erase("moe_intermediate_size");
  e = error_of([&] { parse_model_config(c, "", "m/config.json"); });
  EXPECT_NE(e.find("missing 'moe_intermediate_size'"), std::string::npos) << e;
  c = qwen3(2);
  c["num_experts"] = -3;
  e = error_of([&] { parse_model_config(c, "", "m/config.json"); });
  EXPECT_NE(e.find("'num_experts' must be a positive integer"), std::string::npos) << e;
  e = error_of([&] { read_model_config(kFixtures + "/no-such-model"); });
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
}

}  // namespace
}  // namespace moequant
