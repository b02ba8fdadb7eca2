#include "moequant/hf/hf_moe_model.h"

#include <ATen/ATen.h>

#include "moequant/calib/calibrate.h"
#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/export/checkpoint_completeness.h"
#include "moequant/forward/checkpoint_tensor.h"
#include "moequant/forward/expert_storage.h"
#include "moequant/io/side_files.h"

namespace moequant {

HfMoeModel::HfMoeModel(ModelConfig config, const parallel::ParallelState& ps,
                       const HfLoadOptions& options)
    : config_(std::move(config)), ps_(ps), options_(options) {
  checkpoint_ = std::make_unique<io::CheckpointFolder>(io::CheckpointFolder::open(config_.dir));
  // Everything the config implies, before anything is read (a missing lm_head would otherwise
  // export "fine" and load wrong).
  const std::vector<std::string> problems =
      checkpoint_problems(*checkpoint_, config_, ConfigOf::kSource);
  MQ_CHECK(problems.empty(), problems.front(),
           problems.size() > 1 ? str_cat(" (and ", problems.size() - 1, " more problem(s))") : "");
  check_expert_tensors();
  layers_ = register_module("layers", std::make_shared<torch::nn::Module>());
  const parallel::IndexRange experts = ps_.local_experts();
  const parallel::IndexRange shard = ps_.local_etp_shard(config_.intermediate);
  for (int layer : config_.moe_layers) {
    if (!ps_.holds_layer(layer)) continue;
    local_layers_.push_back(layer);
    MoeExpertsOptions o;
    o.num_local_experts = experts.size();
    o.first_global_expert = experts.begin;
    o.num_global_experts = config_.num_experts;
    o.hidden = config_.hidden;
    o.local_intermediate = shard.size();
    o.per_expert_amax = options_.per_expert_amax;
    o.format = options_.format;
    o.dtype = storage_scalar_type(expert_dtype_);
    o.init_weights = false;  // weights stay in the checkpoint's mapping
    MoeExperts m(o);
    layers_->register_module(std::to_string(layer), m);
    experts_.emplace(layer, m);
  }
  find_quant_modules(*this);  // full names ("layers.3.linear_fc1.weight_quantizer")
}

void HfMoeModel::check_expert_tensors() {
  expert_dtype_ = ExpertStorage(config_, *checkpoint_).check();
}

MoeExperts HfMoeModel::experts(int layer) const {
  auto it = experts_.find(layer);
  MQ_CHECK(it != experts_.end(), "rank ", ps_.rank(), " holds no experts of layer ", layer);
  return it->second;
}

GroupedLinear HfMoeModel::linear(int layer, bool fc1) const {
  const MoeExperts m = experts(layer);
  return fc1 ? m->linear_fc1 : m->linear_fc2;
}

int64_t HfMoeModel::local_index(int layer, int expert) const {
  MQ_CHECK(ps_.holds_expert(expert), "rank ", ps_.rank(), " does not hold expert ", expert,
           " of layer ", layer);
  return ps_.local_expert(expert);
}

ExpertShard HfMoeModel::expert_shard(int layer, int expert, bool fc1) const {
  const parallel::IndexRange r = ps_.local_etp_shard(config_.intermediate);
  const SwiGluWeights w =
      ExpertStorage(config_, *checkpoint_).read(layer, expert, fc1, r.begin, r.end);
  return {w.gate, w.up, w.down};
}

std::vector<std::string> HfMoeModel::unit_tensors(int layer, int expert, bool fc1) const {
  return ExpertStorage(config_, *checkpoint_).unit_tensors(layer, expert, fc1);
}

void HfMoeModel::prefetch_expert(int layer, int expert, bool fc1) const {
  for (const std::string& name : unit_tensors(layer, expert, fc1)) checkpoint_->prefetch(name);
}

void HfMoeModel::release_expert(int layer, int expert, bool fc1) const {
  for (const std::string& name : unit_tensors(layer, expert, fc1)) checkpoint_->release(name);
}

std::shared_ptr<TensorQuantizer> HfMoeModel::weight_quantizer(int layer, int expert,
                                                              bool fc1) const {
  return linear(layer, fc1)->quantizer_for(local_index(layer, expert));
}

std::shared_ptr<TensorQuantizer> HfMoeModel::input_quantizer(int layer, int expert,
                                                             bool fc1) const {
  return linear(layer, fc1)->input_quantizer_for(local_index(layer, expert));
}

std::shared_ptr<TensorQuantizer> HfMoeModel::shared_input_quantizer(int layer, bool fc1) const {
  return linear(layer, fc1)->input_quantizer;
}

std::vector<PassthroughTensor> HfMoeModel::passthrough_tensors() const {
  std::vector<PassthroughTensor> out;
  for (const std::string& name : checkpoint_->names()) {
    if (config_.is_routed_expert_tensor(name)) continue;  // produced by the experts
    const io::TensorInfo& info = checkpoint_->info(name);
    // An FP8 block source's weights are written as the bf16 they encode; their scales are not.
    const std::string suffix = "_scale_inv";
    if (ends_with(name, suffix) &&
        is_fp8_block_weight(*checkpoint_, name.substr(0, name.size() - suffix.size())))
      continue;
    out.push_back(
        {name, is_fp8_block_weight(*checkpoint_, name) ? DType::kBF16 : info.dtype, info.shape});
  }
  return out;
}

std::vector<std::string> HfMoeModel::side_files() const {
  return io::select_side_files(config_.dir);  // tokenizer, generation config, ...; no weights
}

at::Tensor HfMoeModel::passthrough_data(const std::string& name) const {
  const io::TensorInfo& info = checkpoint_->info(name);
  if (info.dtype == DType::kF8E4M3) return checkpoint_tensor(*checkpoint_, name);
  // The bytes as they are, whatever the dtype (no float view needed to copy them).
  return at::from_blob(const_cast<uint8_t*>(checkpoint_->data(name)),
                       {static_cast<int64_t>(info.nbytes())}, at::TensorOptions().dtype(at::kByte));
}

void HfMoeModel::release_passthrough(const std::string& name) const {
  checkpoint_->release(name);
}

uint64_t HfMoeModel::checkpoint_bytes() const {
  uint64_t n = 0;
  for (const std::string& name : checkpoint_->names()) n += checkpoint_->info(name).nbytes();
  return n;
}

std::string HfMoeModel::shard_label(int layer, int expert, ExpertProj p) const {
  return ExpertStorage(config_, *checkpoint_).label(layer, expert, p);
}

size_t HfMoeModel::calibrate_layer_weights(int layer) {
  const size_t tensors =
      calibrate_layer_weights(layer, [&](int e, bool fc1) { return expert_shard(layer, e, fc1); });
  const MoeExperts m = experts(layer);
  for (int64_t i = 0; i < m->options().num_local_experts; ++i) {
    const int e = static_cast<int>(m->options().first_global_expert + i);
    release_expert(layer, e, true);
    release_expert(layer, e, false);
  }
  return tensors;
}

size_t HfMoeModel::calibrate_layer_weights(
    int layer, const std::function<ExpertShard(int expert, bool fc1)>& shard_of) {
  const MoeExperts m = experts(layer);
  std::vector<CalibPair> pairs;
  for (int64_t i = 0; i < m->options().num_local_experts; ++i) {
    const int e = static_cast<int>(m->options().first_global_expert + i);
    const ExpertShard fc1 = shard_of(e, true), fc2 = shard_of(e, false);
    const auto q1 = m->linear_fc1->quantizer_for(i), q2 = m->linear_fc2->quantizer_for(i);
    pairs.push_back({shard_label(layer, e, ExpertProj::kGate), fc1.gate, q1});
    pairs.push_back({shard_label(layer, e, ExpertProj::kUp), fc1.up, q1});
    pairs.push_back({shard_label(layer, e, ExpertProj::kDown), fc2.down, q2});
  }
  return calibrate_pairs(pairs).tensors;
}

size_t HfMoeModel::calibrate_weights() {
  size_t tensors = 0;
  for (int layer : local_layers_) tensors += calibrate_layer_weights(layer);
  return tensors;
}

}  // namespace moequant
