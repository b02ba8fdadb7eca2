// A Hugging Face MoE checkpoint held the Megatron way on this rank: for every MoE layer of this
// rank's pipeline stage, a MoeExperts module (linear_fc1 / linear_fc2 GroupedLinears and their
// quantizers) over this rank's EP experts and ETP shards. Weights stay in the memory-mapped
// checkpoint: calibration and export read them as views of the mapping, one layer (or one expert
// unit) at a time, so a rank never holds more than a few of them.
//
// It is the exporter's source (ExportSource): this rank's shards with their quantizers, and every
// other tensor of the checkpoint passed through unchanged.
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "moequant/core/format.h"
#include "moequant/export/export_source.h"
#include "moequant/forward/forward_hooks.h"
#include "moequant/hf/dense_quantizers.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/model/model_config.h"
#include "moequant/modules/moe_experts.h"
#include "moequant/parallel/parallel_state.h"

namespace moequant {

struct HfLoadOptions {
  QuantFormat format = QuantFormat::kFP8;
  bool per_expert_amax = false;
  bool quantize_dense = false;  // --quantize all-linear: quantizers of the dense linears too
  bool kv_cache = false;        // --kv-cache fp8: key and value quantizers of every attention
};

class HfMoeModel : public torch::nn::Module, public ExportSource {
 public:
  // Opens the checkpoint (headers only) and builds the modules for this rank's layers and
  // experts; no weight is read. Checks that every expert tensor exists with the shape and dtype
  // config.json implies, and that no expert tensor lies outside config.json's experts (errors
  // name the tensor); every rank checks every layer, so a bad checkpoint fails all alike.
  HfMoeModel(ModelConfig config, const parallel::ParallelState& ps, const HfLoadOptions& options);

  const ModelConfig& config() const { return config_; }
  const io::CheckpointFolder& checkpoint() const { return *checkpoint_; }
  const parallel::ParallelState& parallel_state() const { return ps_; }

  // Global indices of the MoE layers held here, ascending.
  const std::vector<int>& local_moe_layers() const { return local_layers_; }
  MoeExperts experts(int layer) const;

  // Weight calibration of one layer's experts held here: batched amax passes over views of the
  // mapping (the bf16 an FP8 or MXFP4 source decodes to: a few experts at a time), each expert's
  // pages dropped after its pass. NaN/Inf is an error naming the checkpoint tensors. Returns the
  // tensors observed.
  size_t calibrate_layer_weights(int layer);
  // The same from copies of the shards the caller already holds (e.g. on the GPU, for the
  // forward): `shard_of(expert, fc1)` gives them; the checkpoint's pages are not touched unless
  // `done(expert)` (called after the expert's pass) releases them.
  size_t calibrate_layer_weights(int layer,
                                 const std::function<ExpertShard(int expert, bool fc1)>& shard_of,
                                 const std::function<void(int expert)>& done = {});
  // All of this rank's layers; quantizers get their full names. Returns the tensors observed.
  // (An MXFP4 source's amax is read from its codes, calibrate_encoded_layer_weights.)
  size_t calibrate_weights();

  // ---- Dense linears and the KV cache (dense_quantizers.h), for this rank's stage -----------
  // Global indices of every decoder layer of this rank's pipeline stage.
  std::vector<int> stage_layers() const;
  // Weight calibration of a layer's dense linears (with quantize_dense): each TP rank observes
  // its Megatron shard of every member of every fusion group. Returns the tensors observed.
  size_t calibrate_dense_weights(int layer);
  // What the calibration forward of `layer` calls at the dense linears' inputs and the KV cache:
  // their quantizers observe (and the tensors go on unchanged). Empty without dense or KV
  // quantizers.
  ForwardHooks calibration_hooks(int layer) const;

  // Bytes of the whole checkpoint (what a run reads).
  uint64_t checkpoint_bytes() const;

  // Keeps an expert unit's stored tensors, quantized during calibration (GPTQ); the exporter then
  // writes them instead of rounding the weights itself (precomputed_unit).
  void set_precomputed(int layer, int expert, bool fc1,
                       std::vector<std::vector<StoredTensor>> stored);

  // ---- ExportSource ---------------------------------------------------------------------------
  DType expert_dtype() const override { return expert_dtype_; }
  QuantFormat weight_format() const override { return options_.format; }
  ExpertShard expert_shard(int layer, int expert, bool fc1) const override;
  void prefetch_expert(int layer, int expert, bool fc1) const override;
  void release_expert(int layer, int expert, bool fc1) const override;
  std::shared_ptr<TensorQuantizer> weight_quantizer(int layer, int expert, bool fc1) const override;
  std::shared_ptr<TensorQuantizer> input_quantizer(int layer, int expert, bool fc1) const override;
  std::shared_ptr<TensorQuantizer> shared_input_quantizer(int layer, bool fc1) const override;
  std::vector<PassthroughTensor> passthrough_tensors() const override;
  // Every regular file of the folder but the weights, their index and the configs the exporter
  // writes itself: the tokenizer's files, generation_config.json, chat templates, ...
  std::vector<std::string> side_files() const override;
  at::Tensor passthrough_data(const std::string& name) const override;
  void release_passthrough(const std::string& name) const override;
  const std::vector<std::vector<StoredTensor>>* precomputed_unit(int layer, int expert,
                                                                 bool fc1) const override;
  bool experts_are_e2m1_coded() const override;
  bool has_dense_quantizers() const override { return options_.quantize_dense; }
  bool has_kv_cache_quantizers() const override { return options_.kv_cache; }
  at::Tensor dense_weight(const DenseLinear& linear) const override;
  std::shared_ptr<TensorQuantizer> dense_weight_quantizer(int layer,
                                                          TensorUse group) const override;
  std::shared_ptr<TensorQuantizer> dense_input_quantizer(int layer, TensorUse group) const override;
  std::shared_ptr<TensorQuantizer> kv_cache_quantizer(int layer, bool keys) const override;

 private:
  // Weight calibration from encoded experts without decoding them (ExpertStorage::encoded_amax);
  // nullopt where the layer's storage or quantizers do not allow it.
  std::optional<size_t> calibrate_encoded_layer_weights(int layer);
  // The checkpoint bytes one expert unit reads (its slice of a fused tensor; ExpertStorage).
  std::vector<io::TensorSpan> unit_spans(int layer, int expert, bool fc1) const;
  std::string shard_label(int layer, int expert, ExpertProj p) const;
  void check_expert_tensors();
  GroupedLinear linear(int layer, bool fc1) const;
  int64_t local_index(int layer, int expert) const;
  void build_dense_quantizers();
  DenseGroup dense_group(int layer, TensorUse group) const;

  ModelConfig config_;
  parallel::ParallelState ps_;
  HfLoadOptions options_;
  std::unique_ptr<io::CheckpointFolder> checkpoint_;
  std::vector<int> local_layers_;
  std::map<int, MoeExperts> experts_;
  std::shared_ptr<torch::nn::Module> layers_;  // children named by global layer index
  // This stage's dense fusion groups and KV-cache quantizers, by (layer, group) and layer.
  std::map<std::pair<int, TensorUse>, DenseGroup> dense_groups_;
  std::map<int, KvCacheQuantizers> kv_cache_;
  // GPTQ's codes by (layer, expert, fc1): written during calibration, read by the exporter.
  std::map<std::tuple<int, int, bool>, std::vector<std::vector<StoredTensor>>> precomputed_;
  DType expert_dtype_ = DType::kBF16;
};

}  // namespace moequant
