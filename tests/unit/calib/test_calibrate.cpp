// Calibration over module trees: batched weight calibration, the grouped-linear seed bug (an
// empty list fails export naming the module), per-expert and fused experts, include/exclude
// patterns, NaN weights, per-channel amax and input calibration mode.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include "../module_fixtures.h"
#include "moequant/calib/calibrate.h"
#include "moequant/common/error.h"
#include "moequant/export/module_weights.h"
#include "moequant/modules/fused_experts.h"
#include "moequant/modules/grouped_linear.h"
#include "moequant/modules/linear.h"
#include "moequant/modules/sequential_experts.h"

namespace moequant {
namespace {

using test::grouped;
using test::max_abs;
using test::TinyMoE;

TEST(Calibration, SharedGroupedAmaxIsMaxOverAllExperts) {
  TinyMoE model;
  {
    at::NoGradGuard no_grad;
    model.fc1->weight(2).mul_(
        10);  // in place: the parameter itself  // expert 2 holds the largest value
  }
  auto report = calibrate_weights(model);
  EXPECT_EQ(report.tensors, 4u + 4u + 1u);
  EXPECT_EQ(report.quantizers, 3u);
  float expect = 0;
  for (int i = 0; i < 4; ++i) expect = std::max(expect, max_abs(model.fc1->weight(i)));
  EXPECT_EQ(model.fc1->weight_quantizer->amax_scalar(), expect);
  EXPECT_EQ(model.fc1->weight_quantizer->amax_scalar(), max_abs(model.fc1->weight(2)));
  EXPECT_EQ(model.fc1->weight_quantizer->name(), "fc1.weight_quantizer");
  EXPECT_EQ(model.router->weight_quantizer->amax_scalar(), max_abs(model.router->weight));
  // Calibrating again gives the same answer (quantizers are reset, not accumulated twice).
  calibrate_weights(model);
  EXPECT_EQ(model.fc1->weight_quantizer->amax_scalar(), expect);
}

// The seed bug (TEGroupedMLP weight-only quantization): a grouped linear whose calibration list
// is empty never gets an amax, and export must say so, naming the module.
struct SeedBugGroupedLinear : GroupedLinearImpl {
  using GroupedLinearImpl::GroupedLinearImpl;
  std::vector<CalibPair> iter_weights_for_calibration() override { return {}; }
};

TEST(Calibration, EmptyCalibrationListFailsExportNamingTheModule) {
  torch::nn::Module root;
  auto buggy = root.register_module("linear_fc1",
                                    std::make_shared<SeedBugGroupedLinear>(grouped(4, 16, 32)));
  calibrate_weights(root);
  EXPECT_FALSE(buggy->weight_quantizer->is_calibrated());
  auto refs = find_quant_modules(root);
  ASSERT_EQ(refs.size(), 1u);
  try {
    quantize_module_weights(refs[0]);
    FAIL() << "export of an uncalibrated grouped linear must fail";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("module 'linear_fc1'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("weight0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("iter_weights_for_calibration"), std::string::npos) << msg;
  }
  // With the right list the same module calibrates and exports every expert.
  torch::nn::Module root2;
  auto good = root2.register_module("linear_fc1", GroupedLinear(grouped(4, 16, 32)).ptr());
  calibrate_weights(root2);
  auto exported = quantize_module_weights(find_quant_modules(root2)[0]);
  ASSERT_EQ(exported.size(), 4u);
  EXPECT_EQ(exported[3].name, "linear_fc1.weight3");
  float expect = 0;
  for (int i = 0; i < 4; ++i) expect = std::max(expect, max_abs(good->weight(i)));
  EXPECT_EQ(good->weight_quantizer->amax_scalar(), expect);
}

TEST(Calibration, PerExpertModeGivesEachExpertItsOwnAmax) {
  auto o = grouped(3, 8, 8);
  o.per_expert_amax = true;
  o.first_global_expert = 6;
  torch::nn::Module root;
  auto g = root.register_module("fc1", GroupedLinear(o).ptr());
  calibrate_weights(root);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(g->quantizer_for(i)->amax_scalar(), max_abs(g->weight(i)));
  EXPECT_EQ(g->quantizer_for(1)->name(), "fc1.weight_quantizer.7");  // global expert index
  EXPECT_TRUE(g->quantizer_for(0)->scope().etp);
  EXPECT_FALSE(g->quantizer_for(0)->scope().ep);
  EXPECT_TRUE(g->weight_quantizer->scope().ep);
}

TEST(Calibration, FusedExpertsUsePerExpertQuantizersOnSlices) {
  FusedExpertsOptions o;
  o.num_experts = 3;
  o.hidden = 16;
  o.intermediate = 8;
  o.format = QuantFormat::kNVFP4;
  torch::nn::Module root;
  auto fused = root.register_module("experts", FusedExperts(o).ptr());
  auto pairs = fused->iter_weights_for_calibration();
  ASSERT_EQ(pairs.size(), 6u);
  EXPECT_EQ(pairs[2].weight_name, "gate_up_proj[1]");
  EXPECT_EQ(pairs[2].weight.sizes(), (std::vector<int64_t>{16, 16}));
  calibrate_weights(root);
  for (int e = 0; e < 3; ++e) {
    EXPECT_EQ(fused->gate_up_weight_quantizers[e]->amax_scalar(), max_abs(fused->gate_up_proj[e]));
    EXPECT_EQ(fused->down_weight_quantizers[e]->amax_scalar(), max_abs(fused->down_proj[e]));
  }
  EXPECT_EQ(fused->down_weight_quantizers[2]->name(), "experts.down_weight_quantizer.2");
}

TEST(Calibration, ExcludePatternsSkipModules) {
  TinyMoE model;
  calibrate_weights(model, ModuleFilter({}, {"router"}));
  EXPECT_FALSE(model.router->weight_quantizer->is_calibrated());
  EXPECT_FALSE(model.router->weight_quantizer->enabled());
  EXPECT_TRUE(model.fc1->weight_quantizer->is_calibrated());
  TinyMoE model2;
  calibrate_weights(model2, ModuleFilter({}, {"re:^fc[12]$"}));
  EXPECT_FALSE(model2.fc2->weight_quantizer->is_calibrated());
  EXPECT_TRUE(model2.router->weight_quantizer->is_calibrated());
  EXPECT_TRUE(pattern_matches("*.experts.*", "model.layers.0.experts.3"));
  EXPECT_FALSE(pattern_matches("lm_head", "model.lm_head"));
  EXPECT_THROW(pattern_matches("re:(", "x"), Error);
}

TEST(Calibration, NanWeightIsAnErrorNamingIt) {
  TinyMoE model;
  {
    at::NoGradGuard no_grad;
    model.fc2->weight(1)[0][3] = NAN;
  }
  try {
    calibrate_weights(model);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fc2.weight1"), std::string::npos) << e.what();
  }
}

TEST(Calibration, PerChannelLinearGetsRowAmax) {
  LinearOptions o;
  o.in_features = 8;
  o.out_features = 5;
  o.format = QuantFormat::kFP8;
  o.axis = AmaxAxis::kPerChannel;
  o.split = ParallelSplit::kColumn;
  torch::nn::Module root;
  auto lin = root.register_module("proj", Linear(o).ptr());
  calibrate_weights(root);
  const auto& amax = lin->weight_quantizer->amax();
  ASSERT_EQ(amax.size(), 5u);
  for (int r = 0; r < 5; ++r) EXPECT_EQ(amax[r], max_abs(lin->weight[r]));
  EXPECT_FALSE(lin->weight_quantizer->scope().tp);  // column split, per-channel: no reduction
}

TEST(InputCalibration, ForwardObservesOnlyInCalibrationModeWithoutGrad) {
  TinyMoE model;
  at::Tensor x = at::randn({6, 16}) * 5;
  model.fc1->forward(x, {1, 2, 0, 3});
  EXPECT_FALSE(model.fc1->input_quantizer->is_calibrated());
  {
    CalibrationMode mode(model);
    at::Tensor y = model.fc1->forward(x, {1, 2, 0, 3});
    EXPECT_FALSE(y.requires_grad());  // no graph recorded
    EXPECT_EQ(model.fc1->input_quantizer->amax_scalar(), max_abs(x));
    model.fc1->forward(x * 2, {1, 2, 0, 3});
    EXPECT_EQ(model.fc1->input_quantizer->amax_scalar(), 2 * max_abs(x));
  }
  EXPECT_TRUE(at::GradMode::is_enabled());
  EXPECT_TRUE(model.fc1->forward(x, {1, 2, 0, 3}).requires_grad());
  model.fc1->forward(x * 100, {1, 2, 0, 3});  // outside the mode: not observed
  EXPECT_EQ(model.fc1->input_quantizer->amax_scalar(), 2 * max_abs(x));
}

TEST(InputCalibration, ExpertsWithoutTokensStayUncalibrated) {
  torch::nn::Module root;
  auto experts =
      root.register_module("experts", SequentialExperts(3, 8, 4, QuantFormat::kFP8).ptr());
  {
    CalibrationMode mode(root);
    experts->forward(at::randn({5, 8}), {2, 0, 3});
  }
  EXPECT_TRUE(experts->expert(0)->gate_proj->input_quantizer->is_calibrated());
  EXPECT_FALSE(experts->expert(1)->gate_proj->input_quantizer->is_calibrated());
  EXPECT_TRUE(experts->expert(2)->down_proj->input_quantizer->is_calibrated());
  EXPECT_EQ(experts->expert(1)->gate_proj->input_quantizer->name(),
            "experts.experts.1.gate_proj.input_quantizer");
  EXPECT_EQ(find_quant_modules(root).size(), 9u);
}

}  // namespace
}  // namespace moequant
