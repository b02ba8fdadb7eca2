// The exporter on one rank, driven through the library API (no checkpoint on disk): the plan's
// files, headers and offsets, producers and modules; the policy for an uncalibrated weight
// quantizer (an error, a fallback only when asked for); the scheme from what was calibrated;
// input scales and the refusal of a zero input amax.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "moequant/calib/calibrate.h"
#include "moequant/common/error.h"
#include "moequant/export/export_plan.h"
#include "moequant/export/exporter.h"
#include "moequant/export/module_expert_source.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/kernels/numerics.h"
#include "moequant/parallel/single_communicator.h"

namespace moequant {
namespace {

// The schemes by the names the engines know them.
const CheckpointScheme kFp8Dynamic{QuantFormat::kFP8, false};
const CheckpointScheme kModeloptNvfp4{QuantFormat::kNVFP4, true};
const CheckpointScheme kGptqInt4{QuantFormat::kINT4, false};

ModelConfig tiny_config(int layers, int experts, int64_t hidden, int64_t inter) {
  return parse_model_config({{"model_type", "qwen3_moe"},
                             {"num_hidden_layers", layers},
                             {"num_experts", experts},
                             {"hidden_size", hidden},
                             {"moe_intermediate_size", inter}},
                            "", "test config");
}

struct Fixture {
  explicit Fixture(QuantFormat format) {
    config = tiny_config(1, 4, 32, 16);
    parallel::ModelDims dims{config.num_layers, config.num_experts, config.intermediate};
    ps = std::make_unique<parallel::ParallelState>(1, 0, parallel::ParallelSizes{}, dims);
    MoeExpertsOptions o;
    o.num_local_experts = 4;
    o.num_global_experts = 4;
    o.hidden = 32;
    o.local_intermediate = 16;
    o.format = format;
    experts = MoeExperts(o);
    root.register_module("layer0", experts.ptr());
    out = std::filesystem::temp_directory_path() /
          ("moequant-exporter-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(out);
  }
  ~Fixture() { std::filesystem::remove_all(out); }
  ExportSummary run(const ExportOptions& base) {
    ExportOptions eo = base;
    eo.out_dir = out.string();
    ModuleExpertSource src({{0, experts}});
    parallel::SingleCommunicator world;
    return export_checkpoint(config, *ps, world, src, eo);
  }
  ModelConfig config;
  std::unique_ptr<parallel::ParallelState> ps;
  torch::nn::Module root;
  MoeExperts experts{nullptr};
  std::filesystem::path out;
};

float read_scalar(const io::CheckpointFolder& f, const std::string& name) {
  float v;
  std::memcpy(&v, f.data(name), 4);
  return v;
}

TEST(ExportPlan, FilesCarryTheirHeadersAndEveryTensorItsOffset) {
  const ModelConfig c = tiny_config(2, 8, 64, 32);
  parallel::ModelDims dims{2, 8, 32};
  parallel::ParallelState ps(4, 0, parallel::ParallelSizes{1, 4, 1, 1}, dims);
  PlanOptions po;
  po.scheme = kModeloptNvfp4;
  po.max_shard_bytes = 8000;
  const ExportPlan plan =
      make_export_plan(c, ps,
                       {{"model.embed_tokens.weight", DType::kBF16, {256, 64}},
                        {"model.layers.1.self_attn.q_proj.weight", DType::kBF16, {64, 64}},
                        {"lm_head.weight", DType::kBF16, {256, 64}}},
                       po);
  EXPECT_EQ(plan.tensors.front().name, "model.embed_tokens.weight");
  ASSERT_GT(plan.files.size(), 2u);
  for (const PlannedFile& f : plan.files) {
    EXPECT_TRUE(f.data_bytes <= po.max_shard_bytes || f.first == f.last) << f.name;
    // The header is the 8-byte length and the JSON; tensors tile the rest in order.
    uint64_t n = 0;
    for (int b = 7; b >= 0; --b) n = (n << 8) | static_cast<uint8_t>(f.header[b]);
    EXPECT_EQ(n + 8, f.header.size()) << f.name;
    uint64_t offset = f.header.size();
    for (size_t i = f.first; i <= f.last; ++i) {
      EXPECT_EQ(plan.tensors[i].offset, offset) << plan.tensors[i].name;
      offset += plan.tensors[i].nbytes;
    }
    EXPECT_EQ(offset, f.size());
  }
  // Expert e of layer l is produced by its EP rank (EP4: two experts per rank); static scheme:
  // an input_scale beside every quantized weight.
  size_t input_scales = 0;
  for (const PlannedTensor& t : plan.tensors) {
    if (t.expert >= 0) {
      EXPECT_EQ(t.producer, t.expert / 2) << t.name;
    }
    input_scales += t.suffix == "input_scale";
  }
  EXPECT_EQ(input_scales, 2u * 8u * 3u);
  EXPECT_EQ(plan.units.size(), 2u * 8u * 2u);
  // Modules: the passthrough linears and lm_head unquantized, every expert projection quantized.
  EXPECT_EQ(plan.unquantized_modules(),
            (std::vector<std::string>{"model.layers.1.self_attn.q_proj", "lm_head"}));
  EXPECT_EQ(plan.modules.size(), 2u + 2u * 8u * 3u + 2u);  // + each layer's fused experts module
  char last[64];
  std::snprintf(last, sizeof(last), "model-%05zu-of-%05zu.safetensors", plan.files.size(),
                plan.files.size());
  EXPECT_EQ(plan.files.back().name, last);
}

// Passthrough tensors are spread over the ranks by bytes: the embedding and lm_head land on
// different ranks and the small projections even out the rest (in name order, one rank took a
// large tensor and every small one).
TEST(ExportPlan, PassthroughTensorsAreSpreadOverTheRanksByBytes) {
  const ModelConfig c = tiny_config(2, 4, 64, 32);
  parallel::ParallelState ps(2, 0, parallel::ParallelSizes{1, 2, 1, 1}, {2, 4, 32});
  PlanOptions po;
  po.scheme = kFp8Dynamic;
  std::vector<PassthroughTensor> passthrough = {
      {"model.embed_tokens.weight", DType::kBF16, {512, 64}},
      {"lm_head.weight", DType::kBF16, {512, 64}}};
  for (int l = 0; l < 2; ++l)
    for (const char* p : {"q_proj", "k_proj", "v_proj", "o_proj"})
      passthrough.push_back({"model.layers." + std::to_string(l) + ".self_attn." + p + ".weight",
                             DType::kBF16,
                             {64, 64}});
  const ExportPlan plan = make_export_plan(c, ps, passthrough, po);
  std::vector<uint64_t> bytes(2, 0);
  int embed = -1, head = -1;
  for (const PlannedTensor& t : plan.tensors) {
    if (t.source != TensorSource::kPassthrough) continue;
    bytes[t.producer] += t.nbytes;
    if (t.name == "model.embed_tokens.weight") embed = t.producer;
    if (t.name == "lm_head.weight") head = t.producer;
  }
  EXPECT_NE(embed, head);
  EXPECT_EQ(bytes[0], bytes[1]);  // 64 KiB + four 8 KiB projections each
}

TEST(ExportPlan, PartlyExcludedLayersAreRefusedButForInt4) {
  const ModelConfig c = tiny_config(2, 4, 64, 32);
  parallel::ParallelState ps(1, 0, parallel::ParallelSizes{}, {2, 4, 32});
  PlanOptions po;
  po.scheme = kFp8Dynamic;
  po.exclude = {"re:layers\\.1\\.mlp\\.experts\\.2\\."};
  try {
    make_export_plan(c, ps, {}, po);
    FAIL() << "a partly excluded layer must be refused";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("layer 1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("int4"), std::string::npos) << msg;
  }
  po.scheme = kGptqInt4;
  EXPECT_EQ(make_export_plan(c, ps, {}, po).unquantized_modules().size(), 3u + 1u);  // + lm_head
  po.scheme = kFp8Dynamic;
  po.exclude = {"model.layers.1.*"};  // the whole layer: fine
  const ExportPlan whole = make_export_plan(c, ps, {}, po);
  EXPECT_EQ(whole.unquantized_modules().size(), 4u * 3u + 2u);  // + the layer's experts, lm_head
}

TEST(Exporter, UncalibratedWeightQuantizerFailsUnlessAFallbackIsAsked) {
  Fixture fx(QuantFormat::kFP8);
  calibrate_weights(fx.root);
  // Per-expert mode is where an expert can lack its own amax; emulate with the shared one.
  fx.experts->linear_fc1->weight_quantizer->reset();
  ExportOptions eo;
  try {
    fx.run(eo);
    FAIL() << "an uncalibrated weight quantizer must fail the export by default";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("layer0.linear_fc1.weight_quantizer"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.layers.0.mlp.experts.0.gate_proj"), std::string::npos) << msg;
  }
  EXPECT_FALSE(std::filesystem::exists(fx.out));

  eo.uncalibrated_weights = UncalibratedWeights::kFallback;
  const ExportSummary s = fx.run(eo);
  EXPECT_EQ(s.scheme, kFp8Dynamic);  // nothing observed inputs
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_NE(s.warnings[0].find("layer0.linear_fc1.weight_quantizer"), std::string::npos)
      << s.warnings[0];
  const io::CheckpointFolder f = io::CheckpointFolder::open(fx.out.string());
  for (int e = 0; e < 4; ++e) {
    const float amax = fx.experts->linear_fc1->weight(e).abs().max().item<float>();
    const std::string p = "model.layers.0.mlp.experts." + std::to_string(e) + ".";
    EXPECT_EQ(read_scalar(f, p + "gate_proj.weight_scale"), amax / 448.0f);
    EXPECT_EQ(read_scalar(f, p + "up_proj.weight_scale"), amax / 448.0f);  // gate == up
    EXPECT_FALSE(f.has(p + "gate_proj.input_scale"));
  }
}

TEST(Exporter, InputScalesFromCalibratedInputsAndZeroAmaxRefused) {
  Fixture fx(QuantFormat::kNVFP4);
  calibrate_weights(fx.root);
  at::Tensor x = at::randn({10, 32}) * 3;
  {
    CalibrationMode mode(fx.root);
    fx.experts->forward(x, {4, 0, 3, 3});  // expert 1 gets no tokens: the layer's input amax serves
  }
  ExportOptions eo;
  eo.activations_calibrated = true;
  EXPECT_EQ(fx.run(eo).scheme, kModeloptNvfp4);
  const io::CheckpointFolder f = io::CheckpointFolder::open(fx.out.string());
  const float in_amax = fx.experts->linear_fc1->input_quantizer->amax_scalar();
  EXPECT_EQ(in_amax, x.abs().max().item<float>());
  EXPECT_EQ(read_scalar(f, "model.layers.0.mlp.experts.1.gate_proj.input_scale"),
            in_amax / (6.0f * 448.0f));
  EXPECT_TRUE(f.has("model.layers.0.mlp.experts.3.down_proj.input_scale"));

  std::filesystem::remove_all(fx.out);
  fx.experts->linear_fc2->input_quantizer->set_amax({0.0f});
  try {
    fx.run(eo);
    FAIL() << "a zero input amax must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(fx.out)) << "a failed export left a folder";
}

}  // namespace
}  // namespace moequant
