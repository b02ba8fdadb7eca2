#include "moequant/hf/hf_moe_model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "moequant/calib/calibrate.h"
#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/export/checkpoint_completeness.h"
#include "moequant/forward/checkpoint_tensor.h"
#include "moequant/forward/expert_storage.h"
#include "moequant/io/side_files.h"
#include "moequant/model/decoder_config.h"

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
  build_dense_quantizers();
  find_quant_modules(*this);  // full names ("layers.3.linear_fc1.weight_quantizer")
}

std::vector<int> HfMoeModel::stage_layers() const {
  std::vector<int> out;
  const parallel::IndexRange r = ps_.local_layers();
  for (int64_t l = r.begin; l < r.end; ++l) out.push_back(static_cast<int>(l));
  return out;
}

void HfMoeModel::build_dense_quantizers() {
  if (!options_.quantize_dense && !options_.kv_cache) return;
  const DecoderConfig d = decoder_config(config_);
  if (options_.quantize_dense) {
    auto dense = register_module("dense", std::make_shared<torch::nn::Module>());
    const std::vector<DenseLinear> all = dense_linears(config_, d);
    for (int layer : stage_layers()) {
      auto per_layer =
          dense->register_module(std::to_string(layer), std::make_shared<torch::nn::Module>());
      for (const DenseLinear& l : all) {
        if (l.layer != layer || l.use != l.group) continue;  // one module per fusion group
        std::vector<DenseLinear> members;
        for (const DenseLinear* m : fusion_members(all, layer, l.group)) members.push_back(*m);
        // Named after the group's first member inside its layer ("self_attn_q_proj").
        std::string key = l.module.substr(config_.layer_prefix(layer).size());
        for (char& c : key)
          if (c == '.') c = '_';
        DenseGroup g(std::move(members), options_.format);
        per_layer->register_module(key, g);
        dense_groups_.emplace(std::make_pair(layer, l.group), g);
      }
    }
  }
  if (options_.kv_cache) {
    MQ_CHECK(d.attention == AttentionKind::kGqa, config_.model_type,
             ": --kv-cache fp8 is not written for multi-head latent attention (the engines cache "
             "its compressed latent, and how they apply k_scale / v_scale to it is not yet "
             "written down in docs/formats.md)");
    auto kv = register_module("kv_cache", std::make_shared<torch::nn::Module>());
    for (int layer : stage_layers()) {
      KvCacheQuantizers q;
      kv->register_module(std::to_string(layer), q);
      kv_cache_.emplace(layer, q);
    }
  }
}

DenseGroup HfMoeModel::dense_group(int layer, TensorUse group) const {
  auto it = dense_groups_.find({layer, group});
  MQ_CHECK(it != dense_groups_.end(), "rank ", ps_.rank(), " holds no quantizer of layer ", layer,
           "'s ", use_name(group));
  return it->second;
}

size_t HfMoeModel::calibrate_dense_weights(int layer) {
  if (dense_groups_.empty()) return 0;
  std::vector<CalibPair> pairs;
  std::vector<std::string> read;
  for (const auto& [key, g] : dense_groups_) {
    if (key.first != layer) continue;
    for (const DenseLinear& m : g->members()) {
      const at::Tensor w = dense_weight(m);
      // This TP rank's Megatron shard: rows of a column-parallel weight, columns of a
      // row-parallel one; the MAX over TP is the whole weight's amax.
      at::Tensor shard = w;
      if (m.split != TpSplit::kNone) {
        const int dim = m.split == TpSplit::kColumn ? 0 : 1;
        const parallel::IndexRange r = ps_.local_tp_shard(m.shape[dim], m.module);
        shard = w.narrow(dim, r.begin, r.size());
      }
      pairs.push_back({m.weight, shard, g->weight_quantizer});
      read.push_back(m.weight);
    }
  }
  const size_t tensors = calibrate_pairs(pairs).tensors;
  for (const std::string& name : read) checkpoint_->release(name);
  return tensors;
}

ForwardHooks HfMoeModel::calibration_hooks(int layer) const {
  ForwardHooks hooks;
  if (options_.quantize_dense)
    hooks.linear_input = [this, layer](TensorUse use, const at::Tensor& x) {
      auto it = dense_groups_.find({layer, use});
      if (it != dense_groups_.end())
        it->second->input_quantizer->observe(x, it->second->members().front().module + " input");
      return x;
    };
  if (options_.kv_cache)
    hooks.kv = [this, layer](bool keys, const at::Tensor& x) {
      const KvCacheQuantizers& q = kv_cache_.at(layer);
      (keys ? q->keys : q->values)
          ->observe(x, str_cat("layer ", layer, keys ? " keys" : " values"));
      return x;
    };
  return hooks;
}

void HfMoeModel::set_precomputed(int layer, int expert, bool fc1,
                                 std::vector<std::vector<StoredTensor>> stored) {
  precomputed_[{layer, expert, fc1}] = std::move(stored);
}

const std::vector<std::vector<StoredTensor>>* HfMoeModel::precomputed_unit(int layer, int expert,
                                                                           bool fc1) const {
  auto it = precomputed_.find({layer, expert, fc1});
  return it == precomputed_.end() ? nullptr : &it->second;
}

at::Tensor HfMoeModel::dense_weight(const DenseLinear& linear) const {
  return checkpoint_tensor(*checkpoint_, linear.weight, linear.shape);
}

std::shared_ptr<TensorQuantizer> HfMoeModel::dense_weight_quantizer(int layer,
                                                                    TensorUse group) const {
  return dense_group(layer, group)->weight_quantizer;
}

std::shared_ptr<TensorQuantizer> HfMoeModel::dense_input_quantizer(int layer,
                                                                   TensorUse group) const {
  return dense_group(layer, group)->input_quantizer;
}

std::shared_ptr<TensorQuantizer> HfMoeModel::kv_cache_quantizer(int layer, bool keys) const {
  auto it = kv_cache_.find(layer);
  MQ_CHECK(it != kv_cache_.end(), "rank ", ps_.rank(), " holds no KV-cache quantizer of layer ",
           layer);
  return keys ? it->second->keys : it->second->values;
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

std::vector<io::TensorSpan> HfMoeModel::unit_spans(int layer, int expert, bool fc1) const {
  return ExpertStorage(config_, *checkpoint_).unit_spans(layer, expert, fc1);
}

void HfMoeModel::prefetch_expert(int layer, int expert, bool fc1) const {
  for (const io::TensorSpan& span : unit_spans(layer, expert, fc1)) checkpoint_->prefetch(span);
}

void HfMoeModel::release_expert(int layer, int expert, bool fc1) const {
  for (const io::TensorSpan& span : unit_spans(layer, expert, fc1)) checkpoint_->release(span);
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

bool HfMoeModel::experts_are_e2m1_coded() const {
  return config_.source.format == SourceFormat::kMxfp4;
}

uint64_t HfMoeModel::checkpoint_bytes() const {
  uint64_t n = 0;
  for (const std::string& name : checkpoint_->names()) n += checkpoint_->info(name).nbytes();
  return n;
}

std::string HfMoeModel::shard_label(int layer, int expert, ExpertProj p) const {
  return ExpertStorage(config_, *checkpoint_).label(layer, expert, p);
}

namespace {

// Every weight quantizer of a layer's local experts back to uncalibrated.
void reset_expert_quantizers(const MoeExperts& m) {
  for (int64_t i = 0; i < m->options().num_local_experts; ++i) {
    m->linear_fc1->quantizer_for(i)->reset();
    m->linear_fc2->quantizer_for(i)->reset();
  }
}

}  // namespace

size_t HfMoeModel::calibrate_layer_weights(int layer) {
  if (const std::optional<size_t> n = calibrate_encoded_layer_weights(layer)) return *n;
  return calibrate_layer_weights(
      layer, [&](int e, bool fc1) { return expert_shard(layer, e, fc1); },
      [&](int e) {
        release_expert(layer, e, true);
        release_expert(layer, e, false);
      });
}

std::optional<size_t> HfMoeModel::calibrate_encoded_layer_weights(int layer) {
  const ExpertStorage storage(config_, *checkpoint_);
  const MoeExperts m = experts(layer);
  const int64_t n = m->options().num_local_experts;
  const parallel::IndexRange r = ps_.local_etp_shard(config_.intermediate);
  for (int64_t i = 0; i < n; ++i)
    if (m->linear_fc1->quantizer_for(i)->axis() != AmaxAxis::kPerTensor ||
        m->linear_fc2->quantizer_for(i)->axis() != AmaxAxis::kPerTensor)
      return std::nullopt;
  // As calibrate_pairs: reset, then a MAX over each quantizer's weights (shared or per expert).
  // A storage that cannot give an amax falls back to the decoded pass, which resets again.
  reset_expert_quantizers(m);
  for (int64_t i = 0; i < n; ++i) {
    const int e = static_cast<int>(m->options().first_global_expert + i);
    const auto a1 = storage.encoded_amax(layer, e, true, r.begin, r.end);
    const auto a2 = storage.encoded_amax(layer, e, false, r.begin, r.end);
    if (!a1 || !a2) return std::nullopt;
    for (const auto& [v, p] :
         {std::pair{a1->gate, ExpertProj::kGate}, std::pair{a1->up, ExpertProj::kUp},
          std::pair{a2->down, ExpertProj::kDown}})
      MQ_CHECK(std::isfinite(v), "NaN or Inf in 1 tensor(s): '", shard_label(layer, e, p), "'");
    const float v1[] = {std::max(a1->gate, a1->up)}, v2[] = {a2->down};
    m->linear_fc1->quantizer_for(i)->merge_amax(v1, 1);
    m->linear_fc2->quantizer_for(i)->merge_amax(v2, 1);
    release_expert(layer, e, true);  // the export reads them again, from the page cache
    release_expert(layer, e, false);
  }
  return static_cast<size_t>(3 * n);
}

size_t HfMoeModel::calibrate_layer_weights(
    int layer, const std::function<ExpertShard(int expert, bool fc1)>& shard_of,
    const std::function<void(int expert)>& done) {
  // kChunk experts per amax pass: a decoded source's bf16 copies of a whole layer would be
  // gigabytes (GPT-OSS-120B: 6.4 GB, DeepSeek-V3: 22.5 GB); one launch per chunk costs nothing.
  constexpr int64_t kChunk = 16;
  const MoeExperts m = experts(layer);
  const int64_t n = m->options().num_local_experts;
  const auto global = [&](int64_t i) {
    return static_cast<int>(m->options().first_global_expert + i);
  };
  // Reset once; every chunk then MAX-merges into the (possibly shared) quantizers.
  reset_expert_quantizers(m);
  size_t tensors = 0;
  for (int64_t first = 0; first < n; first += kChunk) {
    const int64_t last = std::min(n, first + kChunk);
    std::vector<CalibPair> pairs;
    for (int64_t i = first; i < last; ++i) {
      const int e = global(i);
      const ExpertShard fc1 = shard_of(e, true), fc2 = shard_of(e, false);
      const auto q1 = m->linear_fc1->quantizer_for(i), q2 = m->linear_fc2->quantizer_for(i);
      pairs.push_back({shard_label(layer, e, ExpertProj::kGate), fc1.gate, q1});
      pairs.push_back({shard_label(layer, e, ExpertProj::kUp), fc1.up, q1});
      pairs.push_back({shard_label(layer, e, ExpertProj::kDown), fc2.down, q2});
    }
    tensors += calibrate_pairs(pairs, /*reset=*/false).tensors;
    if (done)
      for (int64_t i = first; i < last; ++i) done(global(i));
  }
  return tensors;
}

size_t HfMoeModel::calibrate_weights() {
  size_t tensors = 0;
  for (int layer : local_layers_) tensors += calibrate_layer_weights(layer);
  return tensors;
}

}  // namespace moequant
