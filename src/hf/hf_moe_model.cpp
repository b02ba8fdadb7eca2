#include "moequant/hf/hf_moe_model.h"

#include <ATen/ATen.h>

#include <regex>

#include "moequant/core/batched_amax.h"
#include "moequant/core/calibrate.h"
#include "moequant/core/error.h"

namespace moequant {

at::ScalarType weight_scalar_type(DType t, const std::string& what) {
  switch (t) {
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kF16:
      return at::kHalf;
    case DType::kF32:
      return at::kFloat;
    default:
      MQ_THROW(what, ": expert weights must be BF16, F16 or F32, found ", dtype_name(t));
  }
}

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

HfMoeModel::HfMoeModel(HfMoeConfig config, const dist::ParallelState& ps,
                       const HfLoadOptions& options)
    : config_(std::move(config)), ps_(ps), options_(options) {
  checkpoint_ = std::make_unique<io::CheckpointFolder>(io::CheckpointFolder::open(config_.dir));
  check_expert_tensors();
  layers_ = register_module("layers", std::make_shared<torch::nn::Module>());
  const dist::IndexRange experts = ps_.local_experts();
  const dist::IndexRange shard = ps_.local_etp_shard(config_.intermediate);
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
    o.dtype = expert_dtype_;
    o.init_weights = false;  // no weights until load_layer()
    MoeExperts m(o);
    layers_->register_module(std::to_string(layer), m);
    experts_.emplace(layer, m);
  }
}

bool HfMoeModel::fused_on_disk(int layer) const {
  return checkpoint_->has(config_.fused_gate_up_name(layer));
}

void HfMoeModel::check_expert_tensors() const {
  // Every rank checks every layer (names and shapes only, from the headers), so a bad checkpoint
  // fails all ranks alike, before any collective.
  const int64_t I = config_.intermediate, H = config_.hidden;
  bool dtype_set = false;
  auto check = [&](const std::string& name, const std::vector<int64_t>& shape) {
    MQ_CHECK(checkpoint_->has(name), config_.dir, ": expert tensor '", name,
             "' is missing from the checkpoint");
    const io::TensorInfo& info = checkpoint_->info(name);
    MQ_CHECK(info.shape == shape, config_.dir, ": tensor '", name, "' has shape ",
             shape_str(info.shape), ", expected ", shape_str(shape), " from config.json");
    const at::ScalarType t = weight_scalar_type(info.dtype, name);
    if (!dtype_set) {
      const_cast<HfMoeModel*>(this)->expert_dtype_ = t;
      dtype_set = true;
    }
    MQ_CHECK(t == expert_dtype_, name, ": dtype ", dtype_name(info.dtype),
             " differs from the other expert weights");
  };
  for (int layer : config_.moe_layers) {
    if (fused_on_disk(layer)) {
      check(config_.fused_gate_up_name(layer), {config_.num_experts, 2 * I, H});
      check(config_.fused_down_name(layer), {config_.num_experts, H, I});
      continue;
    }
    for (int e = 0; e < config_.num_experts; ++e) {
      check(config_.expert_weight_name(layer, e, ExpertProj::kGate), {I, H});
      check(config_.expert_weight_name(layer, e, ExpertProj::kUp), {I, H});
      check(config_.expert_weight_name(layer, e, ExpertProj::kDown), {H, I});
    }
  }
  // Extra experts (an index >= num_experts, or experts in a layer config.json calls dense).
  const std::regex expert_re(R"(^model\.layers\.(\d+)\.(mlp|block_sparse_moe)\.experts\.(\d+)\.)");
  for (const std::string& name : checkpoint_->names()) {
    std::smatch m;
    if (!std::regex_search(name, m, expert_re)) continue;
    const int layer = std::stoi(m[1]);
    const int expert = std::stoi(m[3]);
    MQ_CHECK(layer < config_.num_layers && config_.is_moe_layer(layer), config_.dir, ": tensor '",
             name, "' belongs to no MoE layer of config.json");
    MQ_CHECK(expert < config_.num_experts, config_.dir, ": tensor '", name, "' names expert ",
             expert, " but config.json has ", config_.num_experts, " experts");
  }
}

MoeExperts HfMoeModel::experts(int layer) const {
  auto it = experts_.find(layer);
  MQ_CHECK(it != experts_.end(), "rank ", ps_.rank(), " holds no experts of layer ", layer);
  return it->second;
}

at::Tensor HfMoeModel::read_rows(const std::string& name, int64_t row_begin, int64_t row_end,
                                 int64_t expect_rows, int64_t expect_cols,
                                 int64_t leading_index) const {
  const io::TensorInfo& info = checkpoint_->info(name);
  const at::ScalarType t = weight_scalar_type(info.dtype, name);
  const int64_t elem = dtype_size(info.dtype);
  const uint8_t* base = checkpoint_->data(name);
  const int64_t matrix = leading_index < 0 ? 0 : leading_index * expect_rows * expect_cols;
  const uint8_t* p = base + (matrix + row_begin * expect_cols) * elem;
  // from_blob views the mapping read-only; clone() makes the one copy this rank keeps.
  at::Tensor view = at::from_blob(const_cast<uint8_t*>(p), {row_end - row_begin, expect_cols},
                                  at::TensorOptions().dtype(t));
  at::Tensor copy = view.clone().to(at::Device(options_.device));
  // Per-expert tensors are read once per pass: let their pages go (memory stays at one layer).
  // A fused 3-D tensor is read once per expert, so its pages stay until the layer is done.
  if (leading_index < 0) checkpoint_->release(name);
  return copy;
}

at::Tensor HfMoeModel::read_cols(const std::string& name, int64_t col_begin, int64_t col_end,
                                 int64_t expect_rows, int64_t expect_cols,
                                 int64_t leading_index) const {
  at::Tensor full = read_rows(name, 0, expect_rows, expect_rows, expect_cols, leading_index);
  return full.narrow(1, col_begin, col_end - col_begin).contiguous();
}

at::Tensor HfMoeModel::read_fc1_shard(int layer, int global_expert) const {
  const int64_t I = config_.intermediate, H = config_.hidden;
  const dist::IndexRange r = ps_.local_etp_shard(I);
  if (fused_on_disk(layer)) {
    const std::string name = config_.fused_gate_up_name(layer);
    return at::cat({read_rows(name, r.begin, r.end, 2 * I, H, global_expert),
                    read_rows(name, I + r.begin, I + r.end, 2 * I, H, global_expert)},
                   0);
  }
  return at::cat({read_rows(config_.expert_weight_name(layer, global_expert, ExpertProj::kGate),
                            r.begin, r.end, I, H, -1),
                  read_rows(config_.expert_weight_name(layer, global_expert, ExpertProj::kUp),
                            r.begin, r.end, I, H, -1)},
                 0);
}

at::Tensor HfMoeModel::read_fc2_shard(int layer, int global_expert) const {
  const int64_t I = config_.intermediate, H = config_.hidden;
  const dist::IndexRange r = ps_.local_etp_shard(I);
  if (fused_on_disk(layer))
    return read_cols(config_.fused_down_name(layer), r.begin, r.end, H, I, global_expert);
  return read_cols(config_.expert_weight_name(layer, global_expert, ExpertProj::kDown), r.begin,
                   r.end, H, I, -1);
}

void HfMoeModel::load_layer(int layer) {
  MoeExperts m = experts(layer);
  at::NoGradGuard no_grad;
  for (int64_t i = 0; i < m->options().num_local_experts; ++i) {
    const int e = static_cast<int>(m->options().first_global_expert + i);
    m->linear_fc1->set_weight(i, read_fc1_shard(layer, e));
    m->linear_fc2->set_weight(i, read_fc2_shard(layer, e));
  }
}

void HfMoeModel::release_layer(int layer) {
  MoeExperts m = experts(layer);
  for (int64_t i = 0; i < m->options().num_local_experts; ++i) {
    m->linear_fc1->set_weight(i, at::Tensor());
    m->linear_fc2->set_weight(i, at::Tensor());
  }
}

std::vector<std::string> HfMoeModel::nonfinite_tensors(int layer) const {
  std::vector<std::string> bad;
  auto check = [&](const std::string& name, const at::Tensor& t) {
    try {
      check_finite(t, name);
    } catch (const Error&) {
      bad.push_back(name);
    }
  };
  const int64_t I = config_.intermediate, H = config_.hidden;
  const dist::IndexRange experts = ps_.local_experts();
  for (int64_t e = experts.begin; e < experts.end; ++e) {
    if (fused_on_disk(layer)) {
      const std::string suffix = "[" + std::to_string(e) + "]";
      check(config_.fused_gate_up_name(layer) + suffix,
            read_rows(config_.fused_gate_up_name(layer), 0, 2 * I, 2 * I, H, e));
      check(config_.fused_down_name(layer) + suffix,
            read_rows(config_.fused_down_name(layer), 0, H, H, I, e));
      continue;
    }
    for (ExpertProj p : {ExpertProj::kGate, ExpertProj::kUp, ExpertProj::kDown}) {
      const std::string name = config_.expert_weight_name(layer, static_cast<int>(e), p);
      const bool down = p == ExpertProj::kDown;
      check(name, read_rows(name, 0, down ? H : I, down ? H : I, down ? I : H, -1));
    }
  }
  return bad;
}

size_t HfMoeModel::calibrate_weights_streaming() {
  size_t tensors = 0;
  for (int layer : local_layers_) {
    load_layer(layer);
    try {
      tensors += calibrate_weights(*experts(layer)).tensors;
    } catch (const Error& e) {
      release_layer(layer);
      // The batched pass names module weights; find the checkpoint tensors to blame (this
      // second read happens only on the error path).
      const std::vector<std::string> bad = nonfinite_tensors(layer);
      if (bad.empty()) throw;
      std::string list;
      for (const std::string& b : bad) list += (list.empty() ? "" : ", ") + b;
      MQ_THROW(config_.dir, ": NaN or Inf in expert weight(s) ", list);
    }
    release_layer(layer);
  }
  find_quant_modules(*this);  // full names ("layers.3.linear_fc1.weight_quantizer")
  return tensors;
}

}  // namespace moequant
