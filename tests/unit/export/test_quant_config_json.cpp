// The checkpoint configs (docs/formats.md, "The exported checkpoint") for every scheme, key by key,
// the one decision of the scheme from what was calibrated, and the engine view reading them back
// with the engines' matching rules.
#include <gtest/gtest.h>

#include "moequant/common/error.h"
#include "moequant/export/checkpoint_scheme.h"
#include "moequant/export/engine_view.h"
#include "moequant/export/quant_config_json.h"

namespace moequant {
namespace {

// The schemes by the names the engines know them.
const CheckpointScheme kUnquantized_{QuantFormat::kNone, false};
const CheckpointScheme kModeloptFp8{QuantFormat::kFP8, true};
const CheckpointScheme kFp8Dynamic{QuantFormat::kFP8, false};
const CheckpointScheme kModeloptNvfp4{QuantFormat::kNVFP4, true};
const CheckpointScheme kModeloptW4A16Nvfp4{QuantFormat::kNVFP4, false};
const CheckpointScheme kFp8Block{QuantFormat::kFP8Block, false};
const CheckpointScheme kGptqInt4{QuantFormat::kINT4, false};

ModelConfig qwen3() {
  return parse_model_config({{"model_type", "qwen3_moe"},
                             {"num_hidden_layers", 2},
                             {"num_experts", 4},
                             {"hidden_size", 64},
                             {"moe_intermediate_size", 32},
                             {"quantization_config",  // a DeepSeek-style fp8 source's: not to leak
                              {{"quant_method", "fp8"}, {"weight_block_size", {128, 128}}}}},
                            "", "c");
}

const std::vector<std::string> kUnquantized = {
    "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.gate", "model.layers.1.self_attn.q_proj",
    "model.layers.1.mlp.gate", "lm_head"};
const std::vector<std::string> kQuantized = {"model.layers.0.mlp.experts.0.gate_proj",
                                             "model.layers.1.mlp.experts.3.down_proj"};

std::vector<std::string> keys(const nlohmann::json& j) {
  std::vector<std::string> out;
  for (const auto& item : j.items()) out.push_back(item.key());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(CheckpointScheme, StaticActivationsOnlyWhenCalibrated) {
  EXPECT_EQ(choose_scheme(QuantFormat::kFP8, false), kFp8Dynamic);
  EXPECT_EQ(choose_scheme(QuantFormat::kFP8, true), kModeloptFp8);
  EXPECT_EQ(choose_scheme(QuantFormat::kNVFP4, false), kModeloptW4A16Nvfp4);
  EXPECT_EQ(choose_scheme(QuantFormat::kNVFP4, true), kModeloptNvfp4);
  for (bool calibrated : {false, true}) {
    EXPECT_EQ(choose_scheme(QuantFormat::kFP8Block, calibrated), kFp8Block);
    EXPECT_EQ(choose_scheme(QuantFormat::kINT4, calibrated), kGptqInt4);
    for (QuantFormat f : {QuantFormat::kNone, QuantFormat::kFP8, QuantFormat::kNVFP4,
                          QuantFormat::kFP8Block, QuantFormat::kINT4}) {
      const CheckpointScheme s = choose_scheme(f, calibrated);
      EXPECT_EQ(s.format, f);
      EXPECT_TRUE(!s.static_activations || calibrated) << s.names().description;
    }
  }
}

TEST(QuantConfigJson, ModeloptFlatFormHasExactlyFormatsKeys) {
  const nlohmann::json c = exported_config(qwen3(), kModeloptNvfp4, kUnquantized, kQuantized);
  const nlohmann::json& q = c["quantization_config"];
  EXPECT_EQ(keys(q),
            (std::vector<std::string>{"config_groups", "exclude_modules", "group_size", "ignore",
                                      "producer", "quant_algo", "quant_method"}));
  EXPECT_EQ(q["quant_method"], "modelopt");
  EXPECT_EQ(q["quant_algo"], "NVFP4");
  EXPECT_EQ(q["ignore"], kUnquantized);
  EXPECT_EQ(q["exclude_modules"], kUnquantized);
  EXPECT_EQ(q["group_size"], 16);
  const nlohmann::json w = {
      {"dynamic", false}, {"num_bits", 4}, {"type", "float"}, {"group_size", 16}};
  EXPECT_EQ(q["config_groups"]["group_0"]["weights"], w);
  EXPECT_EQ(q["config_groups"]["group_0"]["input_activations"], w);
  EXPECT_EQ(q["config_groups"]["group_0"]["targets"], nlohmann::json({"Linear"}));
  EXPECT_EQ(q["producer"]["name"], "moequant");

  const nlohmann::json w4a16 =
      exported_config(qwen3(), kModeloptW4A16Nvfp4, kUnquantized, kQuantized);
  EXPECT_EQ(w4a16["quantization_config"]["quant_algo"], "W4A16_NVFP4");
  EXPECT_FALSE(
      w4a16["quantization_config"]["config_groups"]["group_0"].contains("input_activations"));
  const nlohmann::json fp8 = exported_config(qwen3(), kModeloptFp8, kUnquantized, kQuantized);
  EXPECT_EQ(fp8["quantization_config"]["quant_algo"], "FP8");
  EXPECT_FALSE(fp8["quantization_config"].contains("group_size"));
  EXPECT_EQ(fp8["quantization_config"]["config_groups"]["group_0"]["input_activations"],
            nlohmann::json({{"dynamic", false}, {"num_bits", 8}, {"type", "float"}}));
  EXPECT_FALSE(fp8["quantization_config"].contains("kv_cache_scheme"));
}

TEST(QuantConfigJson, HfQuantConfigIsTheNestedFormOfModeloptOnly) {
  const auto h = hf_quant_config(kModeloptW4A16Nvfp4, kUnquantized);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(keys(*h), (std::vector<std::string>{"producer", "quantization"}));
  EXPECT_EQ((*h)["quantization"]["quant_algo"], "W4A16_NVFP4");
  EXPECT_TRUE((*h)["quantization"]["kv_cache_quant_algo"].is_null());
  EXPECT_EQ((*h)["quantization"]["group_size"], 16);
  EXPECT_EQ((*h)["quantization"]["exclude_modules"], kUnquantized);
  EXPECT_FALSE(hf_quant_config(kFp8Dynamic, kUnquantized).has_value());
  EXPECT_FALSE(hf_quant_config(kGptqInt4, kUnquantized).has_value());
}

TEST(QuantConfigJson, Fp8FormsListTheSameModulesUnderBothKeys) {
  for (CheckpointScheme s : {kFp8Dynamic, kFp8Block}) {
    const nlohmann::json q =
        exported_config(qwen3(), s, kUnquantized, kQuantized)["quantization_config"];
    EXPECT_EQ(q["quant_method"], "fp8");
    EXPECT_EQ(q["activation_scheme"], "dynamic");
    EXPECT_EQ(q["ignored_layers"], kUnquantized);
    EXPECT_EQ(q["modules_to_not_convert"], kUnquantized);
    EXPECT_EQ(q.contains("weight_block_size"), s == kFp8Block);
  }
  // kUnquantized drops a stale quantization_config of the source.
  EXPECT_FALSE(exported_config(qwen3(), kUnquantized_, {}, {}).contains("quantization_config"));
}

TEST(QuantConfigJson, GptqNegativeRegexesGeneralizeLayersOnlyWhereSafe) {
  const auto re = gptq_negative_regexes(
      {"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj",
       "model.layers.1.mlp.experts.2.up_proj"},
      {"model.layers.0.mlp.experts.2.up_proj", "model.layers.1.mlp.experts.3.up_proj"});
  EXPECT_EQ(re, (std::vector<std::string>{R"(-:model\.layers\.\d+\.self_attn\.q_proj$)",
                                          R"(-:model\.layers\.1\.mlp\.experts\.2\.up_proj$)"}));
}

TEST(EngineView, ReadsEveryFormAndMatchesLikeTheEngines) {
  const std::vector<std::pair<std::string, bool>> modules = {
      {"model.layers.0.self_attn.q_proj", false},
      {"model.layers.0.mlp.gate", false},
      {"lm_head", false},
      {"model.layers.0.mlp.experts.0.gate_proj", true},
      {"model.layers.0.mlp.experts", true}};
  const std::vector<std::string> unq = {"model.layers.0.self_attn.q_proj",
                                        "model.layers.0.mlp.gate", "lm_head"};
  const std::vector<std::string> q = {"model.layers.0.mlp.experts.0.gate_proj"};
  for (CheckpointScheme s :
       {kModeloptFp8, kFp8Dynamic, kModeloptNvfp4, kModeloptW4A16Nvfp4, kFp8Block, kGptqInt4}) {
    const nlohmann::json c = exported_config(qwen3(), s, unq, q);
    const EngineView v = engine_view_of(c, "config.json");
    EXPECT_EQ(v.format, s.format) << s.names().description;
    EXPECT_EQ(v.static_activations, s.static_activations) << s.names().description;
    EXPECT_EQ(engine_mismatches(v, modules), std::vector<std::string>{}) << s.names().description;
  }
  // The bug this schema fixes: a flat ModelOpt config with the list under another key.
  nlohmann::json bad = exported_config(qwen3(), kModeloptFp8, unq, q);
  bad["quantization_config"].erase("ignore");
  EXPECT_THROW(engine_view_of(bad, "config.json"), Error);
  bad["quantization_config"]["ignore"] = nlohmann::json::array({"model.layers.0.mlp"});
  const auto problems = engine_mismatches(engine_view_of(bad, "config.json"), modules);
  // An entry that is no module's name, glob or superstring matches nothing: every unquantized
  // module would be read as quantized, and each one is reported.
  EXPECT_EQ(problems.size(), 3u);
}

TEST(EngineView, SubstringAndGlobRulesCatchOverBroadExclusions) {
  EXPECT_TRUE(vllm_excludes("model.layers.3.mlp.experts",
                            {"model.layers.3.mlp.experts.0.gate_proj"}));  // vLLM's MoE rule
  EXPECT_TRUE(vllm_excludes("model.layers.3.self_attn.o_proj", {"model.layers.*.self_attn*"}));
  EXPECT_FALSE(
      vllm_excludes("model.layers.13.mlp.experts", {"model.layers.1.mlp.experts.0.gate_proj"}));
  EngineView v;
  v.method = "modelopt";
  v.vllm_exclusions = {"model.layers.*"};
  const auto problems = engine_mismatches(v, {{"model.layers.0.mlp.experts.0.up_proj", true}});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("stored quantized"), std::string::npos) << problems[0];
}

}  // namespace
}  // namespace moequant
