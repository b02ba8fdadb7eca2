// Quantizable modules: the (weight, quantizer) lists of QuantModule and GroupedLinear
// (weight0..N, one shared quantizer) and the grouped forward.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include "../module_fixtures.h"
#include "moequant/common/error.h"
#include "moequant/modules/grouped_linear.h"
#include "moequant/modules/linear.h"

namespace moequant {
namespace {

using test::grouped;

TEST(QuantModule, DefaultListYieldsWeightAndNothingWhenRemoved) {
  LinearOptions o;
  o.in_features = 8;
  o.out_features = 4;
  o.format = QuantFormat::kFP8;
  Linear lin(o);
  auto pairs = lin->iter_weights_for_calibration();
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].weight_name, "weight");
  EXPECT_EQ(pairs[0].quantizer, lin->weight_quantizer);
  lin->weight = at::Tensor();  // a module whose weight was removed
  EXPECT_TRUE(lin->iter_weights_for_calibration().empty());
}

TEST(GroupedLinear, RegistersWeightNAndBiasNWithOneSharedQuantizer) {
  GroupedLinear g(grouped(3, 8, 4, /*bias=*/true));
  std::vector<std::string> names;
  for (const auto& p : g->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names,
            (std::vector<std::string>{"weight0", "bias0", "weight1", "bias1", "weight2", "bias2"}));
  auto pairs = g->iter_weights_for_calibration();
  ASSERT_EQ(pairs.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(pairs[i].weight_name, "weight" + std::to_string(i));
    EXPECT_TRUE(pairs[i].weight.is_same(g->weight(i)));
    EXPECT_EQ(pairs[i].quantizer, g->weight_quantizer);  // ONE shared quantizer
  }
}

TEST(GroupedLinear, ForwardRunsEachGemmOnItsRows) {
  GroupedLinear g(grouped(3, 8, 4, true));
  at::Tensor x = at::randn({7, 8});
  const std::vector<int64_t> splits{2, 0, 5};
  at::Tensor y = g->forward(x, splits);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{7, 4}));
  EXPECT_TRUE(
      at::allclose(y.narrow(0, 0, 2), at::linear(x.narrow(0, 0, 2), g->weight(0), g->bias(0))));
  EXPECT_TRUE(
      at::allclose(y.narrow(0, 2, 5), at::linear(x.narrow(0, 2, 5), g->weight(2), g->bias(2))));
  EXPECT_THROW(g->forward(x, {1, 1}), Error);
}

}  // namespace
}  // namespace moequant
