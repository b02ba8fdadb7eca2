// moequant's forward against Hugging Face transformers: on each fixture, the logits of our
// float32 forward on transformers' own tokens equal the logits transformers computed for the same
// folder in float32 (tests/data/hf/*/logits_f32.npy), to 1e-4 of the logits' largest magnitude.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "moequant/common/error.h"
#include "moequant/forward/decoder_forward.h"
#include "npy.h"

namespace moequant {
namespace {

const std::string kFixtures = MOEQUANT_TEST_DATA "/hf";

void expect_transformers_logits(const std::string& model) {
  const std::string dir = kFixtures + "/" + model;
  const test::Npy ids_npy = test::read_npy(dir + "/logit_ids.npy");
  const test::Npy ref_npy = test::read_npy(dir + "/logits_f32.npy");
  ASSERT_EQ(ids_npy.descr, "<i8");
  ASSERT_EQ(ref_npy.descr, "<f4");
  at::Tensor ids = at::tensor(ids_npy.values<int64_t>(), at::kLong).view(ids_npy.shape);
  at::Tensor ref = at::tensor(ref_npy.values<float>(), at::kFloat).view(ref_npy.shape);

  const ModelConfig config = read_model_config(dir);
  const io::CheckpointFolder ckpt = io::CheckpointFolder::open(dir);
  const at::Tensor logits = forward_logits(ckpt, config, ids, at::kCPU);
  ASSERT_EQ(logits.sizes(), ref.sizes());
  const double scale = ref.abs().max().item<double>();
  const double diff = (logits - ref).abs().max().item<double>();
  std::printf("%s: max |ours - transformers| = %.3g, max |logit| = %.3g (ratio %.2g)\n",
              model.c_str(), diff, scale, diff / scale);
  EXPECT_LE(diff, 1e-4 * scale) << model << ": max |ours - transformers| = " << diff
                                << " with max |logit| = " << scale;
  // The same argmax almost everywhere is the user-visible half of "equal".
  const double agree = logits.argmax(-1).eq(ref.argmax(-1)).to(at::kFloat).mean().item<double>();
  EXPECT_EQ(agree, 1.0) << model;
}

TEST(DecoderForward, Qwen3MoeEqualsTransformers) {
  expect_transformers_logits("qwen3moe");
}
TEST(DecoderForward, MixtralEqualsTransformers) {
  expect_transformers_logits("mixtral");
}
TEST(DecoderForward, Qwen2MoeWithSharedExpertEqualsTransformers) {
  expect_transformers_logits("qwen2_moe");
}

TEST(DecoderForward, DeepseekV3WithLatentAttentionAndGroupedRouterEqualsTransformers) {
  expect_transformers_logits("deepseek_v3");
}
// DeepSeek's FP8 release format (tests/data/make_fp8_source.py): transformers' logits of the folder
// loaded with FineGrainedFP8Config(dequantize=True) in bf16
// (tests/gpu/transformers_fp8_reference.py on the GPU machine), as our reader gives every F8_E4M3
// weight times its block scale in bf16.
TEST(DecoderForward, DeepseekV3FromItsFp8ReleaseEqualsTransformers) {
  expect_transformers_logits("deepseek_v3_fp8");
}
TEST(DecoderForward, Glm4MoeWithPartialRotaryEqualsTransformers) {
  expect_transformers_logits("glm4_moe");
}

TEST(DecoderForward, OlmoeWithWholeProjectionQkNormEqualsTransformers) {
  expect_transformers_logits("olmoe");
}
TEST(DecoderForward, GptOssWithSinksBiasesAndClampedSwiGluEqualsTransformers) {
  expect_transformers_logits("gpt_oss");
}
// GPT-OSS's MXFP4 release layout (tests/data/make_mxfp4_source.py, subnormal blocks included):
// transformers' logits of the folder loaded with Mxfp4Config(dequantize=True), in float32
// (tests/gpu/transformers_layout_check.py), as our reader decodes the blocks.
TEST(DecoderForward, GptOssFromItsMxfp4ReleaseEqualsTransformers) {
  expect_transformers_logits("gpt_oss_mxfp4");
}

TEST(DecoderForward, TokenOutsideTheVocabularyIsAnError) {
  const std::string dir = kFixtures + "/qwen3moe";
  const ModelConfig config = read_model_config(dir);
  const io::CheckpointFolder ckpt = io::CheckpointFolder::open(dir);
  const at::Tensor ids = at::full({1, 4}, 256, at::kLong);  // vocab is 256: ids 0..255
  try {
    forward_logits(ckpt, config, ids, at::kCPU);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 256 is outside the vocabulary of 256"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace moequant
