// The export plan: every tensor of the output checkpoint, in write order, with its dtype,
// shape, producer rank and shard file. Every rank derives the same plan from the config, the
// source headers and the layout, so no negotiation is needed and the output does not depend
// on the layout: file contents and names are a function of the tensor list alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moequant/core/dtype.h"
#include "moequant/core/format.h"
#include "moequant/dist/parallel_state.h"
#include "moequant/hf/hf_config.h"

namespace moequant {

// One tensor quantize_weight() stores for a weight (suffix replaces "weight").
struct OutputSpec {
  std::string suffix;
  DType dtype;
  std::vector<int64_t> shape;
};

// What `format` stores for a [rows, cols] weight of dtype `source`, in write order, plus
// "input_scale" when `input_scale` (fp8 / nvfp4 only). Shape errors (nvfp4 in % 16, int4
// in % 8 / out % 8) throw naming `name`.
std::vector<OutputSpec> quantized_outputs(QuantFormat format, int64_t rows, int64_t cols,
                                          DType source, bool input_scale, const std::string& name);

enum class TensorSource { kPassthrough, kExpertFc1, kExpertFc2 };

struct PlannedTensor {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
  TensorSource source = TensorSource::kPassthrough;
  int layer = -1;   // global layer, -1 for tensors outside the layers
  int expert = -1;  // global expert index (expert tensors)
  ExpertProj proj = ExpertProj::kGate;
  QuantFormat format = QuantFormat::kNone;  // expert tensors: the format of their projection
  std::string suffix;                       // expert tensors: "weight", "weight_scale", ...
  std::string source_name;                  // passthrough: the name in the source checkpoint
  int producer = 0;                         // world rank that produces the bytes
  int file = 0;                             // index into ExportPlan::files
  bool unit_start = false;  // first tensor of its expert unit (fc1 or fc2 of one expert)
};

struct PlannedFile {
  std::string name;  // "model-00001-of-00003.safetensors"
  int owner = 0;     // world rank that writes it
  size_t first = 0;  // tensor index range [first, last]
  size_t last = 0;
  uint64_t bytes = 0;
};

struct ExportPlan {
  std::vector<PlannedTensor> tensors;
  std::vector<PlannedFile> files;
  uint64_t total_bytes = 0;
};

struct PassthroughTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

// True when an exclude pattern (glob or "re:" regex) matches the module name.
bool is_excluded(const std::string& module, const std::vector<std::string>& exclude);

// The format of one expert projection: `format`, or none when excluded. Gate and up are one
// fused weight for serving engines (one fc1 quantizer here), so excluding either excludes both.
QuantFormat expert_format(const HfMoeConfig& config, int layer, int expert, ExpertProj proj,
                          QuantFormat format, const std::vector<std::string>& exclude);

struct PlanOptions {
  QuantFormat format = QuantFormat::kFP8;
  std::vector<std::string> exclude;  // expert projections left unquantized
  bool input_scales = false;
  uint64_t max_shard_bytes = 5ull << 30;
  DType expert_dtype = DType::kBF16;
};

// Builds the plan. `passthrough` lists the source tensors that are copied unchanged (every
// non-expert tensor of the source checkpoint).
ExportPlan make_export_plan(const HfMoeConfig& config, const dist::ParallelState& ps,
                            const std::vector<PassthroughTensor>& passthrough,
                            const PlanOptions& options);

// Layer index of "model.layers.{L}.…" names, -1 otherwise.
int layer_of_name(const std::string& name);

}  // namespace moequant
