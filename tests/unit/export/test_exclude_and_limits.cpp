// Patterns that match nothing (issue #25, item 18) and sequences that cannot fit (item 9, the
// flag part): refused up front, naming the flag.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "moequant/calib/sequence_limits.h"
#include "moequant/common/error.h"
#include "moequant/export/exclude_patterns.h"
#include "moequant/model/model_config.h"

namespace moequant {
namespace {

const std::string kFixtures = std::string(MOEQUANT_TEST_DATA) + "/hf";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(ExcludePatterns, EveryPatternMustMatchAnExpertProjection) {
  const ModelConfig c = read_model_config(kFixtures + "/qwen3moe");
  EXPECT_EQ(error_of([&] {
              check_exclude_patterns(c, {"model.layers.1.*", "re:experts\\.3\\.down_proj$"});
            }),
            "<no error>");
  const std::string e = error_of([&] {
    check_exclude_patterns(c, {"model.layers.1.*", "model.layers.0.mlp.expert.0.gate_proj"});
  });
  EXPECT_EQ(e.find("--exclude 'model.layers.0.mlp.expert.0.gate_proj' matches no expert "
                   "projection this export quantizes (closest: "
                   "'model.layers.0.mlp.experts.0.gate_proj'"),
            0u)
      << e;
  const ModelConfig m = read_model_config(kFixtures + "/mixtral");
  EXPECT_NE(error_of([&] { check_exclude_patterns(m, {"*.gate_proj"}); }).find("closest: '"),
            std::string::npos);  // Mixtral names them w1/w3/w2
}

TEST(SequenceLimits, LongerThanThePositionsOfTheModel) {
  const ModelConfig c = read_model_config(kFixtures + "/qwen3moe");  // 128 positions
  EXPECT_EQ(default_seq_len(c), 128);
  SequenceRequest r;
  r.seq_len = 128;
  EXPECT_EQ(error_of([&] { check_sequence_limits(c, r); }), "<no error>");
  r.seq_len = 4096;
  EXPECT_EQ(error_of([&] {
              check_sequence_limits(c, r);
            }).find("--calib-seq-len 4096 exceeds the model's max_position_embeddings 128 ("),
            0u);
}

TEST(SequenceLimits, MoreActivationsThanTheMachineHas) {
  const ModelConfig c = read_model_config(kFixtures + "/qwen3moe");
  SequenceRequest r;
  r.seq_len = 64;
  r.samples = 1000000000000;
  const std::string e = error_of([&] { check_sequence_limits(c, r); });
  EXPECT_EQ(e.find("--calib-samples 1000000000000 x --calib-seq-len 64 need about "), 0u) << e;
  EXPECT_NE(e.find("more than this machine's"), std::string::npos);
  r.samples = 16;
  EXPECT_EQ(error_of([&] { check_sequence_limits(c, r); }), "<no error>");
  // Evaluation holds every model's hidden states and vocab-wide logits: its own flags are named.
  r.samples = 4000000000;
  r.models = 3;
  r.logits = true;
  r.samples_flag = "--samples";
  r.seq_len_flag = "--seq-len";
  r.batch_flag = "--batch";
  EXPECT_EQ(error_of([&] { check_sequence_limits(c, r); }).find("--samples 4000000000 x --seq-len"),
            0u);
}

}  // namespace
}  // namespace moequant
