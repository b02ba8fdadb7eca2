// HfMoeModel over the fixtures: this rank's shards are views of the mapping (no copy) with the
// right rows and columns under ETP, the passthrough list is every other tensor, and a layer's
// weight calibration gives the max over all of its experts.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>

#include "moequant/core/tensor_bridge.h"
#include "moequant/hf/hf_moe_model.h"

namespace moequant {
namespace {

const std::string kFixtures = MOEQUANT_TEST_DATA "/hf";

parallel::ParallelState layout(const ModelConfig& c, int world, int rank, int ep, int etp) {
  parallel::ParallelSizes s;
  s.ep = ep;
  s.etp = etp;
  return parallel::ParallelState(world, rank, s, {c.num_layers, c.num_experts, c.intermediate});
}

at::Tensor tensor_of(const io::CheckpointFolder& f, const std::string& name) {
  const io::TensorInfo& info = f.info(name);
  at::Tensor t = at::empty(info.shape, at::TensorOptions().dtype(storage_scalar_type(info.dtype)));
  std::memcpy(t.data_ptr(), f.data(name), info.nbytes());
  return t;
}

TEST(HfMoeModel, ShardsAreViewsOfTheMappingWithTheirEtpRowsAndColumns) {
  const ModelConfig c = read_model_config(kFixtures + "/qwen3moe");
  const HfMoeModel whole(c, layout(c, 1, 0, 1, 1), {});
  const std::string gate = c.expert_weight_name(1, 5, ExpertProj::kGate);
  ExpertShard s = whole.expert_shard(1, 5, true);
  EXPECT_EQ(s.gate.data_ptr(), static_cast<const void*>(whole.checkpoint().data(gate)));
  EXPECT_TRUE(at::equal(s.gate, tensor_of(whole.checkpoint(), gate)));

  // ETP rank 1 of 2 (world 2: EP 1 x ETP 2) holds gate/up rows 16..31 and down columns 16..31.
  const HfMoeModel half(c, layout(c, 2, 1, 1, 2), {});
  s = half.expert_shard(1, 5, true);
  EXPECT_TRUE(at::equal(s.gate, tensor_of(half.checkpoint(), gate).narrow(0, 16, 16)));
  EXPECT_TRUE(at::equal(
      s.up,
      tensor_of(half.checkpoint(), c.expert_weight_name(1, 5, ExpertProj::kUp)).narrow(0, 16, 16)));
  s = half.expert_shard(1, 5, false);
  EXPECT_TRUE(
      at::equal(s.down, tensor_of(half.checkpoint(), c.expert_weight_name(1, 5, ExpertProj::kDown))
                            .narrow(1, 16, 16)));
}

TEST(HfMoeModel, PassthroughIsEveryTensorButTheRoutedExperts) {
  const ModelConfig c = read_model_config(kFixtures + "/qwen2_moe");
  const HfMoeModel m(c, layout(c, 1, 0, 1, 1), {});
  size_t experts = 0, shared = 0;
  for (const std::string& name : m.checkpoint().names())
    if (c.is_routed_expert_tensor(name)) ++experts;
  std::vector<std::string> through;
  for (const PassthroughTensor& p : m.passthrough_tensors()) {
    through.push_back(p.name);
    EXPECT_FALSE(c.is_routed_expert_tensor(p.name)) << p.name;
    if (p.name.find("shared_expert") != std::string::npos) ++shared;
  }
  EXPECT_EQ(experts, 2u * 8u * 3u);
  EXPECT_EQ(through.size() + experts, m.checkpoint().names().size());
  EXPECT_EQ(shared, 2u * 4u);  // gate/up/down of the shared expert and its gate, per layer
  EXPECT_EQ(m.expert_dtype(), DType::kBF16);
}

TEST(HfMoeModel, LayerCalibrationIsTheMaxOverEveryExpertOfTheLayer) {
  const ModelConfig c = read_model_config(kFixtures + "/mixtral");
  HfMoeModel m(c, layout(c, 1, 0, 1, 1), {});
  EXPECT_EQ(m.calibrate_layer_weights(0), 4u * 3u);
  float fc1 = 0, fc2 = 0;
  for (int e = 0; e < c.num_experts; ++e) {
    for (ExpertProj p : {ExpertProj::kGate, ExpertProj::kUp})
      fc1 = std::max(fc1, tensor_of(m.checkpoint(), c.expert_weight_name(0, e, p))
                              .abs()
                              .max()
                              .to(at::kFloat)
                              .item<float>());
    fc2 = std::max(fc2, tensor_of(m.checkpoint(), c.expert_weight_name(0, e, ExpertProj::kDown))
                            .abs()
                            .max()
                            .to(at::kFloat)
                            .item<float>());
  }
  EXPECT_EQ(m.weight_quantizer(0, 2, true)->amax_scalar(), fc1);
  EXPECT_EQ(m.weight_quantizer(0, 2, false)->amax_scalar(), fc2);
  EXPECT_FALSE(m.weight_quantizer(1, 0, true)->is_calibrated());  // layer 1 not calibrated yet
}

}  // namespace
}  // namespace moequant
