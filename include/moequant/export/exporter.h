// The rank-aware exporter (DESIGN.md, "Rank-aware export"): every rank walks the same export
// plan; each expert's ETP shards are gathered at its writer (etp 0, edp 0 of its holders),
// assembled into full [out, in] weights (fc1 un-interleaved into gate and up), quantized, and
// streamed to the owner of its shard file. Memory per rank: one expert unit in flight.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "moequant/core/format.h"
#include "moequant/core/tensor_quantizer.h"
#include "moequant/dist/communicator.h"
#include "moequant/dist/parallel_state.h"
#include "moequant/hf/hf_config.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/modules/moe_experts.h"

namespace moequant {

// Where the exporter finds this rank's expert shards and their quantizers.
class ExpertSource {
 public:
  virtual ~ExpertSource() = default;
  // This rank's ETP shard of a local expert: fc1 [2I/T, H] = [gate_r; up_r], fc2 [H, I/T].
  virtual at::Tensor fc1_shard(int layer, int expert) = 0;
  virtual at::Tensor fc2_shard(int layer, int expert) = 0;
  // The quantizers covering them (weight; input).
  virtual std::shared_ptr<TensorQuantizer> weight_quantizer(int layer, int expert, bool fc1) = 0;
  virtual std::shared_ptr<TensorQuantizer> input_quantizer(int layer, int expert, bool fc1) = 0;
};

// An ExpertSource over MoeExperts modules keyed by global layer. Shards come from the modules'
// weights, or from `read_shard(layer, expert, fc1)` when given (a loader that released them).
class ModuleExpertSource : public ExpertSource {
 public:
  using ShardReader = std::function<at::Tensor(int layer, int expert, bool fc1)>;
  ModuleExpertSource(std::map<int, MoeExperts> layers, ShardReader read_shard = nullptr);
  at::Tensor fc1_shard(int layer, int expert) override;
  at::Tensor fc2_shard(int layer, int expert) override;
  std::shared_ptr<TensorQuantizer> weight_quantizer(int layer, int expert, bool fc1) override;
  std::shared_ptr<TensorQuantizer> input_quantizer(int layer, int expert, bool fc1) override;

 private:
  GroupedLinear linear(int layer, bool fc1) const;
  int64_t local_index(int layer, int expert) const;
  std::map<int, MoeExperts> layers_;
  ShardReader read_shard_;
};

struct ExportOptions {
  std::string out_dir;
  QuantFormat format = QuantFormat::kFP8;
  bool overwrite = false;
  bool input_scales = false;         // write input_scale from the input quantizers (fp8, nvfp4)
  std::vector<std::string> exclude;  // expert projections (module names) left unquantized
  uint64_t max_shard_bytes = 5ull << 30;
  std::string device = "cpu";  // where assembled weights are quantized ("cpu", "cuda")
  // Called on rank 0 after each tensor it handled: (tensors done, tensors planned).
  std::function<void(size_t, size_t)> progress;
};

struct ExportSummary {
  size_t tensors = 0;  // in the checkpoint
  size_t files = 0;
  uint64_t bytes = 0;                 // tensor bytes in the checkpoint
  uint64_t quantized_params = 0;      // elements of quantized expert weights
  uint64_t quantized_bytes = 0;       // bytes they are stored in (data + scales)
  std::vector<std::string> warnings;  // identical on every rank
};

// Exports the checkpoint. Collective over `world` (every rank calls it). `source_ckpt` (may be
// null) supplies the tensors that pass through unchanged; it must be the same folder on every
// rank. On any failure no folder that looks complete is left at out_dir.
ExportSummary export_checkpoint(const HfMoeConfig& config, const dist::ParallelState& ps,
                                dist::Communicator& world, ExpertSource& experts,
                                const io::CheckpointFolder* source_ckpt, DType expert_dtype,
                                const ExportOptions& options);

}  // namespace moequant
