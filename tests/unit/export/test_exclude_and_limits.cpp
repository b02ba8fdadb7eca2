// Patterns that match nothing (issue #25, item 18): refused up front, naming the pattern.
#include <gtest/gtest.h>

#include <functional>
#include <string>

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
                   "projection of this model (closest: 'model.layers.0.mlp.experts.0.gate_proj'"),
            0u)
      << e;
  const ModelConfig m = read_model_config(kFixtures + "/mixtral");
  EXPECT_NE(error_of([&] { check_exclude_patterns(m, {"*.gate_proj"}); }).find("closest: '"),
            std::string::npos);  // Mixtral names them w1/w3/w2
}

}  // namespace
}  // namespace moequant
