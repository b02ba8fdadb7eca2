// Every format's descriptor (core/format.h) against what the exporter writes for it: each
// fixture quantized to each format through quantize_checkpoint, and every expert projection of
// the output holds exactly the tensors the descriptor lays out for its [out, in] (suffixes,
// dtypes, shapes), plus an input_scale where the scheme has static activations.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "moequant/core/format.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/parallel/single_communicator.h"
#include "moequant/pipeline/quantize_checkpoint.h"

namespace moequant {
namespace {

const std::string kFixtures = MOEQUANT_TEST_DATA "/hf";

struct Case {
  std::string fixture;
  QuantFormat format;
  bool calibrated;
};

class FormatOutputs : public ::testing::TestWithParam<Case> {};

TEST_P(FormatOutputs, ExpertTensorsAreTheDescriptorsLayout) {
  const Case c = GetParam();
  const std::filesystem::path out = std::filesystem::temp_directory_path() /
                                    ("moequant-format-outputs-" + std::to_string(::getpid()));
  std::filesystem::remove_all(out);
  QuantizeOptions o;
  o.model_dir = kFixtures + "/" + c.fixture;
  o.out_dir = out.string();
  o.format = c.format;
  o.threads = 1;
  o.allow_partial_blocks = true;  // the fixtures' experts are smaller than one 128-block
  if (c.calibrated) {
    o.calib_data = "random";
    o.calib_samples = 2;
    o.calib_seq_len = 16;
  }
  const QuantizeReport r = quantize_checkpoint(o, std::make_unique<parallel::SingleCommunicator>());
  const FormatDescriptor& f = format_descriptor(c.format);
  const ModelConfig& config = r.config;
  const bool input_scale = c.calibrated && f.has_static_activations();
  const io::CheckpointFolder folder = io::CheckpointFolder::open(out.string());
  // Every tensor of the output by its module (the name before the last dot).
  std::map<std::string, std::set<std::string>> by_module;
  for (const std::string& name : folder.names())
    by_module[name.substr(0, name.rfind('.'))].insert(name.substr(name.rfind('.') + 1));
  size_t checked = 0;
  for (int layer : config.moe_layers)
    for (int e = 0; e < config.num_experts; ++e)
      for (ExpertProj p : {ExpertProj::kGate, ExpertProj::kUp, ExpertProj::kDown}) {
        const std::string module = config.expert_module_name(layer, e, p);
        const bool down = p == ExpertProj::kDown;
        const int64_t rows = down ? config.hidden : config.intermediate;
        const int64_t cols = down ? config.intermediate : config.hidden;
        std::set<std::string> expected;
        for (const StoredTensorSpec& s : f.stored_tensors(
                 rows, cols, folder.info(module + "." + f.weight_suffix()).dtype, module)) {
          const std::string name = module + "." + s.suffix;
          ASSERT_TRUE(folder.has(name)) << name;
          EXPECT_EQ(folder.info(name).dtype, s.dtype) << name;
          EXPECT_EQ(folder.info(name).shape, s.shape) << name;
          expected.insert(s.suffix);
        }
        if (input_scale) {
          const std::string name = module + ".input_scale";
          ASSERT_TRUE(folder.has(name)) << name;
          EXPECT_EQ(folder.info(name).dtype, DType::kF32) << name;
          EXPECT_TRUE(folder.info(name).shape.empty()) << name;
          expected.insert("input_scale");
        }
        EXPECT_EQ(by_module[module], expected) << module;
        ++checked;
      }
  EXPECT_EQ(checked, config.moe_layers.size() * config.num_experts * 3);
  std::filesystem::remove_all(out);
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* fixture : {"qwen3moe", "mixtral", "qwen2_moe", "deepseek_v3", "glm4_moe"})
    for (const FormatDescriptor* f : all_formats()) out.push_back({fixture, f->id, false});
  for (QuantFormat f : {QuantFormat::kFP8, QuantFormat::kNVFP4})
    out.push_back({"qwen3moe", f, true});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FormatOutputs, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.fixture + "_" + format_name(info.param.format) +
                                  (info.param.calibrated ? "_calibrated" : "");
                         });

}  // namespace
}  // namespace moequant
