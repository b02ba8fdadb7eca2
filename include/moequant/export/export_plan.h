// The export plan: every tensor of the output checkpoint with its dtype, shape, file and byte
// offset, and the rank that produces it; every output file with its complete safetensors header;
// and every linear module of the model with whether it is stored quantized.
//
// Everything but the producers is a function of the config, the source's tensor list and the
// options, never of the layout, so every layout writes the same files byte for byte. Headers and
// offsets follow from shapes alone (quantized sizes are known before any byte is produced), which
// is what lets every producer write its own tensors straight into place (docs/design.md,
// "Rank-aware export").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "moequant/common/dtype.h"
#include "moequant/core/format.h"
#include "moequant/export/checkpoint_scheme.h"
#include "moequant/export/export_source.h"
#include "moequant/model/model_config.h"
#include "moequant/parallel/parallel_state.h"

namespace moequant {

// What `format` stores for a [rows, cols] weight of dtype `source` (its descriptor's layout),
// plus "input_scale" when `input_scale` and the format has static activations. Shape errors
// throw naming `name`.
std::vector<StoredTensorSpec> planned_outputs(QuantFormat format, int64_t rows, int64_t cols,
                                              DType source, bool input_scale,
                                              const std::string& name);

// Where a planned tensor's bytes come from: the source as it is, a routed expert's fc1 (gate, up)
// or fc2 (down), a dense linear (--quantize all-linear), or an attention layer's KV-cache scale.
enum class TensorSource { kPassthrough, kExpertFc1, kExpertFc2, kDense, kKvScale };

struct PlannedTensor {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
  TensorSource source = TensorSource::kPassthrough;
  int layer = -1;   // global layer, -1 for tensors outside the layers
  int expert = -1;  // global expert index (expert tensors)
  ExpertProj proj = ExpertProj::kGate;
  QuantFormat format = QuantFormat::kNone;  // expert and dense tensors: their weight's format
  std::string suffix;  // expert, dense and KV tensors: "weight", "weight_scale", "k_scale", ...
  std::string source_name;  // passthrough: the name in the source; dense: the source weight
  int producer = 0;         // world rank that produces the bytes
  int file = 0;             // index into ExportPlan::files
  uint64_t offset = 0;      // byte offset in its file (header included)
};

struct PlannedFile {
  std::string name;    // "model-00001-of-00003.safetensors"
  std::string header;  // the complete file start: 8-byte length + JSON header (padded)
  size_t first = 0;    // tensor index range [first, last]
  size_t last = 0;
  uint64_t data_bytes = 0;  // sum of its tensors' bytes
  uint64_t size() const { return header.size() + data_bytes; }
};

// One unit: what one producer assembles and quantizes at once (fc1 = gate + up of one expert,
// fc2 = its down; or one dense linear), with the tensors it emits.
struct PlannedUnit {
  int layer = 0;
  int expert = 0;  // -1 for a dense linear
  bool fc1 = true;
  int producer = 0;
  QuantFormat format = QuantFormat::kNone;  // of every weight of the unit (gate and up are one)
  std::vector<std::string> weights;         // the checkpoint names of its weights: gate, up | down
  std::vector<size_t> tensors;              // indices into ExportPlan::tensors
  std::optional<DenseLinear> dense;         // set for a dense linear's unit
};

// A linear module of the model as serving engines build them (each MoE layer's fused experts
// module "model.layers.L.mlp.experts" included) and how it is stored.
struct PlannedModule {
  std::string name;  // "model.layers.0.self_attn.q_proj", "lm_head", ...
  bool quantized = false;
};

struct ExportPlan {
  CheckpointScheme scheme;             // unquantized
  std::vector<PlannedTensor> tensors;  // in file order
  std::vector<PlannedFile> files;
  std::vector<PlannedUnit> units;  // expert units in plan order
  std::vector<PlannedModule> modules;
  uint64_t total_bytes = 0;        // tensor bytes (what the index's total_size counts)
  std::vector<std::string> notes;  // check_engine_shape_rules' notes, for the summary
  // Names of the linear modules left unquantized, in model order: the exclusion lists.
  std::vector<std::string> unquantized_modules() const;
};

// True when an exclude pattern (glob or "re:" regex) matches the module name.
bool is_excluded(const std::string& module, const std::vector<std::string>& exclude);

// The format of one expert projection: `format`, or none when excluded. Gate and up are one
// fused weight for serving engines (one fc1 quantizer here), so excluding either excludes both.
QuantFormat expert_format(const ModelConfig& config, int layer, int expert, ExpertProj proj,
                          QuantFormat format, const std::vector<std::string>& exclude);

// The engines' shape rules for `format` on this model (docs/formats.md, "Engine shape rules"):
// fp8_block's fused MoE needs the expert intermediate size to be a multiple of 128 in vLLM and
// SGLang. A model that breaks one is refused, naming the rule and the engines, unless
// `allow_partial_blocks`; the returned notes say what the engines take (or will not load).
std::vector<std::string> check_engine_shape_rules(const ModelConfig& config, QuantFormat format,
                                                  bool allow_partial_blocks);

struct PlanOptions {
  CheckpointScheme scheme{QuantFormat::kFP8, false};
  bool quantize_dense = false;  // --quantize all-linear: the dense linears too (model_tensors.h)
  bool allow_partial_blocks = false;  // write what check_engine_shape_rules refuses
  std::vector<std::string> exclude;   // expert projections left unquantized
  uint64_t max_shard_bytes =
      2000000000;  // "2GB": several files, so parallel writers rarely share one
  DType expert_dtype = DType::kBF16;
};

// The dense linears `options` quantizes: every one of dense_linears() whose fusion group no
// --exclude pattern touches (excluding one of q/k/v or gate/up excludes its group: the engines
// load the group as one linear).
std::vector<DenseLinear> quantized_dense_linears(const ModelConfig& config,
                                                 const std::vector<std::string>& exclude);

// The name an attention layer's KV-cache scale is written under (ModelOpt's:
// "model.layers.N.self_attn.k_proj.k_scale", "...v_proj.v_scale"; docs/formats.md).
std::string kv_scale_name(const ModelConfig& config, int layer, bool keys);

// Builds the plan. `passthrough` lists the source tensors copied unchanged (every tensor of the
// source checkpoint but the routed experts'; a dense linear quantized is taken out of it).
// Errors: a layer whose experts are only partly excluded (an engine runs one method per fused MoE
// layer; GPTQ excepted), shapes the format cannot store, a tensor named twice.
ExportPlan make_export_plan(const ModelConfig& config, const parallel::ParallelState& ps,
                            const std::vector<PassthroughTensor>& passthrough,
                            const PlanOptions& options);

}  // namespace moequant
