// A Hugging Face MoE checkpoint held the Megatron way on this rank: for every MoE layer of this
// rank's pipeline stage, a MoeExperts module (linear_fc1 / linear_fc2 GroupedLinears) over this
// rank's EP experts and ETP shards. Weights are read from the memory-mapped checkpoint one layer
// at a time, so a rank never holds more than one layer of expert weights.
#pragma once

#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>

#include "moequant/core/format.h"
#include "moequant/dist/parallel_state.h"
#include "moequant/hf/hf_config.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/modules/moe_experts.h"

namespace moequant {

struct HfLoadOptions {
  QuantFormat format = QuantFormat::kFP8;
  bool per_expert_amax = false;
  // Where weights are materialized for calibration and quantization ("cpu", "cuda", "cuda:1").
  std::string device = "cpu";
};

class HfMoeModel : public torch::nn::Module {
 public:
  // Opens the checkpoint (headers only) and builds the modules for this rank's layers and
  // experts; no weights are read yet. Checks that every expert tensor this rank needs exists
  // with the shape and dtype config.json implies (errors name the tensor).
  HfMoeModel(HfMoeConfig config, const dist::ParallelState& ps, const HfLoadOptions& options);

  const HfMoeConfig& config() const { return config_; }
  const io::CheckpointFolder& checkpoint() const { return *checkpoint_; }
  const dist::ParallelState& parallel_state() const { return ps_; }
  const HfLoadOptions& options() const { return options_; }

  // Global indices of the MoE layers held here, ascending.
  const std::vector<int>& local_moe_layers() const { return local_layers_; }
  MoeExperts experts(int layer) const;

  // This rank's ETP shard of one expert, read from the checkpoint onto options().device:
  // fc1 = [gate rows r*I/T..; up rows r*I/T..] ([2I/T, H]), fc2 = down columns ([H, I/T]).
  at::Tensor read_fc1_shard(int layer, int global_expert) const;
  at::Tensor read_fc2_shard(int layer, int global_expert) const;

  // Puts one layer's weights into its GroupedLinears, or drops them again.
  void load_layer(int layer);
  void release_layer(int layer);

  // Weight calibration, one layer at a time (load, one batched amax pass, release): memory stays
  // at one layer of experts. Quantizers get their full names. Returns the tensors observed.
  size_t calibrate_weights_streaming();

  // Source dtype of the expert weights (that of the checkpoint).
  at::ScalarType expert_dtype() const { return expert_dtype_; }

 private:
  at::Tensor read_rows(const std::string& name, int64_t row_begin, int64_t row_end,
                       int64_t expect_rows, int64_t expect_cols, int64_t leading_index) const;
  at::Tensor read_cols(const std::string& name, int64_t col_begin, int64_t col_end,
                       int64_t expect_rows, int64_t expect_cols, int64_t leading_index) const;
  void check_expert_tensors() const;
  // Checkpoint names of this rank's expert tensors of `layer` that hold NaN or Inf.
  std::vector<std::string> nonfinite_tensors(int layer) const;
  bool fused_on_disk(int layer) const;

  HfMoeConfig config_;
  dist::ParallelState ps_;
  HfLoadOptions options_;
  std::unique_ptr<io::CheckpointFolder> checkpoint_;
  std::vector<int> local_layers_;
  std::map<int, MoeExperts> experts_;
  std::shared_ptr<torch::nn::Module> layers_;  // children named by global layer index
  at::ScalarType expert_dtype_ = at::kBFloat16;
};

// The at::ScalarType of a checkpoint dtype usable as a weight (BF16, F16, F32); errors name
// `what` otherwise.
at::ScalarType weight_scalar_type(DType t, const std::string& what);

}  // namespace moequant
