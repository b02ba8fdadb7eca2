// The exporter on one rank, driven through the library API (no checkpoint on disk): the plan's
// files and owners, the fallback of an uncalibrated expert quantizer, input scales, and the
// refusal of a zero input amax.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "moequant/core/calibrate.h"
#include "moequant/core/error.h"
#include "moequant/dist/single_communicator.h"
#include "moequant/export/export_plan.h"
#include "moequant/export/exporter.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/kernels/numerics.h"

namespace moequant {
namespace {

HfMoeConfig tiny_config(int layers, int experts, int64_t hidden, int64_t inter) {
  HfMoeConfig c;
  c.model_type = "qwen3_moe";
  c.num_layers = layers;
  c.num_experts = experts;
  c.hidden = hidden;
  c.intermediate = inter;
  for (int l = 0; l < layers; ++l) c.moe_layers.push_back(l);
  c.raw = {{"model_type", "qwen3_moe"}, {"num_hidden_layers", layers}};
  return c;
}

struct Fixture {
  explicit Fixture(QuantFormat format) {
    config = tiny_config(1, 4, 32, 16);
    dist::ModelDims dims{config.num_layers, config.num_experts, config.intermediate};
    ps = std::make_unique<dist::ParallelState>(1, 0, dist::ParallelSizes{}, dims);
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
    dist::SingleCommunicator world;
    return export_checkpoint(config, *ps, world, src, nullptr, DType::kF32, eo);
  }
  HfMoeConfig config;
  std::unique_ptr<dist::ParallelState> ps;
  torch::nn::Module root;
  MoeExperts experts{nullptr};
  std::filesystem::path out;
};

float read_scalar(const io::CheckpointFolder& f, const std::string& name) {
  float v;
  std::memcpy(&v, f.data(name), 4);
  return v;
}

TEST(ExportPlan, FilesAreBoundedAndOwnedByTheirFirstProducer) {
  const HfMoeConfig c = tiny_config(2, 8, 64, 32);
  dist::ModelDims dims{2, 8, 32};
  dist::ParallelState ps(4, 0, dist::ParallelSizes{1, 4, 1, 1}, dims);
  PlanOptions po;
  po.format = QuantFormat::kNVFP4;
  po.max_shard_bytes = 8000;
  const ExportPlan plan =
      make_export_plan(c, ps, {{"model.embed_tokens.weight", DType::kBF16, {256, 64}}}, po);
  EXPECT_EQ(plan.tensors.front().name, "model.embed_tokens.weight");
  ASSERT_GT(plan.files.size(), 2u);
  for (const PlannedFile& f : plan.files) {
    EXPECT_EQ(f.owner, plan.tensors[f.first].producer);
    EXPECT_TRUE(f.bytes <= po.max_shard_bytes || f.first == f.last) << f.name;
  }
  // Expert e of layer l is produced by its EP rank (EP4: two experts per rank).
  for (const PlannedTensor& t : plan.tensors)
    if (t.expert >= 0) {
      EXPECT_EQ(t.producer, t.expert / 2) << t.name;
    }
  char last[64];
  std::snprintf(last, sizeof(last), "model-%05zu-of-%05zu.safetensors", plan.files.size(),
                plan.files.size());
  EXPECT_EQ(plan.files.back().name, last);
}

TEST(Exporter, UncalibratedExpertQuantizerFallsBackWithOneWarning) {
  Fixture fx(QuantFormat::kFP8);
  calibrate_weights(fx.root);
  // Per-expert mode is where an expert can lack its own amax; emulate with the shared one.
  fx.experts->linear_fc1->weight_quantizer->reset();
  ExportOptions eo;
  eo.format = QuantFormat::kFP8;
  const ExportSummary s = fx.run(eo);
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_NE(s.warnings[0].find("layer0.linear_fc1.weight_quantizer"), std::string::npos)
      << s.warnings[0];
  const io::CheckpointFolder f = io::CheckpointFolder::open(fx.out.string());
  for (int e = 0; e < 4; ++e) {
    const float amax = fx.experts->linear_fc1->weight(e).abs().max().item<float>();
    const std::string p = "model.layers.0.mlp.experts." + std::to_string(e) + ".";
    EXPECT_EQ(read_scalar(f, p + "gate_proj.weight_scale"), amax / 448.0f);
    EXPECT_EQ(read_scalar(f, p + "up_proj.weight_scale"), amax / 448.0f);  // gate == up
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
  eo.format = QuantFormat::kNVFP4;
  eo.input_scales = true;
  fx.run(eo);
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
