#include "moequant/export/exporter.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "moequant/core/error.h"
#include "moequant/core/quantize.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/dist/error_agreement.h"
#include "moequant/export/export_plan.h"
#include "moequant/export/output_folder.h"
#include "moequant/export/quant_config_json.h"
#include "moequant/export/scale_checks.h"
#include "moequant/io/safetensors.h"

namespace moequant {

// ---- ModuleExpertSource -----------------------------------------------------------------------

ModuleExpertSource::ModuleExpertSource(std::map<int, MoeExperts> layers, ShardReader read_shard)
    : layers_(std::move(layers)), read_shard_(std::move(read_shard)) {}

GroupedLinear ModuleExpertSource::linear(int layer, bool fc1) const {
  auto it = layers_.find(layer);
  MQ_CHECK(it != layers_.end(), "this rank holds no experts of layer ", layer);
  return fc1 ? it->second->linear_fc1 : it->second->linear_fc2;
}

int64_t ModuleExpertSource::local_index(int layer, int expert) const {
  const GroupedLinear g = linear(layer, true);
  const int64_t i = expert - g->options().first_global_expert;
  MQ_CHECK(i >= 0 && i < g->num_gemms(), "this rank does not hold expert ", expert, " of layer ",
           layer);
  return i;
}

at::Tensor ModuleExpertSource::fc1_shard(int layer, int expert) {
  if (read_shard_) return read_shard_(layer, expert, true);
  return linear(layer, true)->weight(local_index(layer, expert)).detach();
}

at::Tensor ModuleExpertSource::fc2_shard(int layer, int expert) {
  if (read_shard_) return read_shard_(layer, expert, false);
  return linear(layer, false)->weight(local_index(layer, expert)).detach();
}

std::shared_ptr<TensorQuantizer> ModuleExpertSource::weight_quantizer(int layer, int expert,
                                                                      bool fc1) {
  return linear(layer, fc1)->quantizer_for(local_index(layer, expert));
}

std::shared_ptr<TensorQuantizer> ModuleExpertSource::input_quantizer(int layer, int expert,
                                                                     bool fc1) {
  local_index(layer, expert);
  return linear(layer, fc1)->input_quantizer;
}

// ---- the export run ---------------------------------------------------------------------------

namespace {

float input_scale_divisor(QuantFormat f) {
  return f == QuantFormat::kNVFP4 ? 6.0f * 448.0f : 448.0f;
}

class ExportRun {
 public:
  ExportRun(const HfMoeConfig& config, const dist::ParallelState& ps, dist::Communicator& world,
            ExpertSource& experts, const io::CheckpointFolder* source, DType expert_dtype,
            const ExportOptions& options, const ExportPlan& plan)
      : config_(config),
        ps_(ps),
        world_(world),
        experts_(experts),
        source_(source),
        expert_dtype_(expert_dtype),
        options_(options),
        plan_(plan),
        me_(world.rank()),
        input_scales_(options.input_scales && (options.format == QuantFormat::kFP8 ||
                                               options.format == QuantFormat::kNVFP4)) {}

  // Checks what can fail before any byte moves, on the ranks that produce expert units.
  std::string precheck() {
    try {
      for (const PlannedTensor& t : plan_.tensors) {
        if (!t.unit_start || t.producer != me_) continue;
        const bool fc1 = t.source == TensorSource::kExpertFc1;
        auto wq = experts_.weight_quantizer(t.layer, t.expert, fc1);
        MQ_CHECK(wq->axis() == AmaxAxis::kPerTensor, "quantizer '", wq->name(),
                 "': per-channel expert amax is not supported by the exporter yet");
        if (input_scales_) {
          auto iq = experts_.input_quantizer(t.layer, t.expert, fc1);
          MQ_CHECK(iq->is_calibrated(), "input quantizer '", iq->name(),
                   "' saw no tokens on any rank (no expert of layer ", t.layer,
                   " was routed to): its input_scale would be missing");
          MQ_CHECK(iq->amax_scalar() > 0.0f && std::isfinite(iq->amax_scalar()),
                   "input quantizer '", iq->name(), "' has amax ", iq->amax_scalar(),
                   ": its input_scale would load as 1/0 = NaN in serving engines");
        }
      }
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }

  void stream() {
    const size_t n = plan_.tensors.size();
    for (size_t i = 0; i < n; ++i) {
      const PlannedTensor& t = plan_.tensors[i];
      const PlannedFile& file = plan_.files[t.file];
      const bool owner = file.owner == me_;
      if (owner && i == file.first) open_file(file);
      if (t.unit_start) gather_and_produce(t);
      if (t.producer == me_) {
        const uint8_t* bytes = produced_bytes(t);
        if (owner) {
          writer_->write(t.name, bytes, t.nbytes);
        } else {
          world_.send(bytes, t.nbytes, file.owner);
        }
        cache_.erase(t.name);
        if (t.source == TensorSource::kPassthrough) source_->release(t.source_name);
      } else if (owner) {
        recv_buffer_.resize(t.nbytes);
        world_.recv(recv_buffer_.data(), t.nbytes, t.producer);
        writer_->write(t.name, recv_buffer_.data(), t.nbytes);
      }
      if (owner) written_.push_back(t.name);
      if (owner && i == file.last) {
        writer_->finish();
        writer_.reset();
      }
      if (me_ == 0 && options_.progress) options_.progress(i + 1, n);
    }
  }

  const std::vector<std::string>& written() const { return written_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  void open_file(const PlannedFile& file) {
    std::vector<io::TensorSpec> specs;
    for (size_t k = file.first; k <= file.last; ++k)
      specs.push_back({plan_.tensors[k].name, plan_.tensors[k].dtype, plan_.tensors[k].shape});
    writer_ = std::make_unique<io::SafetensorsWriter>(
        partial_dir_for(options_.out_dir) + "/" + file.name, std::move(specs),
        std::map<std::string, std::string>{{"format", "pt"}});
  }

  const uint8_t* produced_bytes(const PlannedTensor& t) {
    if (t.source == TensorSource::kPassthrough) {
      MQ_CHECK(source_ != nullptr, "no source checkpoint for '", t.name, "'");
      return source_->data(t.source_name);
    }
    auto it = cache_.find(t.name);
    MQ_CHECK(it != cache_.end(), "internal: '", t.name, "' was not produced");
    return static_cast<const uint8_t*>(it->second.data_ptr());
  }

  // Gathers the ETP shards of one expert unit at its producer, which quantizes the full weight.
  void gather_and_produce(const PlannedTensor& t) {
    const bool fc1 = t.source == TensorSource::kExpertFc1;
    const int etp = ps_.sizes().etp;
    std::vector<int> holders;
    for (int r = 0; r < etp; ++r) holders.push_back(ps_.expert_shard_rank(t.layer, t.expert, r, 0));
    const auto mine = std::find(holders.begin(), holders.end(), me_);
    if (mine == holders.end()) return;
    const int64_t I = config_.intermediate, H = config_.hidden, local_i = I / etp;
    const std::vector<int64_t> shard_shape =
        fc1 ? std::vector<int64_t>{2 * local_i, H} : std::vector<int64_t>{H, local_i};
    at::Tensor local =
        fc1 ? experts_.fc1_shard(t.layer, t.expert) : experts_.fc2_shard(t.layer, t.expert);
    MQ_CHECK(local.sizes().vec() == shard_shape, "layer ", t.layer, " expert ", t.expert,
             (fc1 ? " fc1" : " fc2"), " shard has shape ", local.sizes(), ", expected [",
             shard_shape[0], ", ", shard_shape[1], "]");
    const uint64_t shard_bytes = static_cast<uint64_t>(local.numel()) * dtype_size(expert_dtype_);
    if (mine != holders.begin()) {
      const at::Tensor host = local.to(at::kCPU).contiguous();
      world_.send(host.data_ptr(), shard_bytes, holders[0]);
      return;
    }
    const at::Device device(options_.device);
    std::vector<at::Tensor> shards{local.to(device)};
    for (int r = 1; r < etp; ++r) {
      at::Tensor buf = at::empty(shard_shape, at::TensorOptions().dtype(local.scalar_type()));
      world_.recv(buf.data_ptr(), shard_bytes, holders[r]);
      shards.push_back(buf.to(device));
    }
    if (fc1) {
      std::vector<at::Tensor> gates, ups;
      for (const at::Tensor& s : shards) {
        gates.push_back(s.narrow(0, 0, local_i));
        ups.push_back(s.narrow(0, local_i, local_i));
      }
      const at::Tensor gate = at::cat(gates, 0), up = at::cat(ups, 0);
      const std::vector<float> amax = weight_amax(t, {gate, up});
      produce(t, ExpertProj::kGate, gate, amax);
      produce(t, ExpertProj::kUp, up, amax);
      check_gate_up_scales_equal(t);
    } else {
      const at::Tensor down = at::cat(shards, 1);
      produce(t, ExpertProj::kDown, down, weight_amax(t, {down}));
    }
  }

  // The quantizer's amax; an uncalibrated quantizer falls back to the weight's own amax (one
  // value for gate and up together) with a warning.
  std::vector<float> weight_amax(const PlannedTensor& t, const std::vector<at::Tensor>& weights) {
    const bool fc1 = t.source == TensorSource::kExpertFc1;
    auto q = experts_.weight_quantizer(t.layer, t.expert, fc1);
    if (!q->enabled() || options_.format == QuantFormat::kNone) return {};
    if (q->is_calibrated()) return q->amax();
    float amax = 0.0f;
    for (const at::Tensor& w : weights)
      amax = std::max(amax, w.abs().max().to(at::kFloat).item<float>());
    warnings_.push_back(q->name() + " (layer " + std::to_string(t.layer) + " expert " +
                        std::to_string(t.expert) + ")");
    return {amax};
  }

  void produce(const PlannedTensor& t, ExpertProj proj, const at::Tensor& w,
               const std::vector<float>& amax) {
    const std::string base = config_.expert_module_name(t.layer, t.expert, proj);
    const QuantFormat format =
        expert_format(config_, t.layer, t.expert, proj, options_.format, options_.exclude);
    std::vector<StoredTensor> stored = quantize_weight(
        w, format, format == QuantFormat::kNone ? std::vector<float>{} : amax, base + ".weight");
    if (input_scales_ && format != QuantFormat::kNone) {
      auto iq = experts_.input_quantizer(t.layer, t.expert, proj != ExpertProj::kDown);
      const float scale = iq->amax_scalar() / input_scale_divisor(options_.format);
      stored.push_back({"input_scale", DType::kF32, {}, at::full({}, scale, at::kFloat)});
    }
    for (StoredTensor& s : stored) {
      const std::string name = base + "." + s.suffix;
      at::Tensor host = s.data.to(at::kCPU).contiguous();
      check_scale_tensor(name, s.dtype, host);
      cache_[name] = host;
    }
  }

  // vLLM keeps only the gate's scalar scale for the fused gate_up weight: they must be equal.
  void check_gate_up_scales_equal(const PlannedTensor& t) {
    const std::string gate = config_.expert_module_name(t.layer, t.expert, ExpertProj::kGate);
    const std::string up = config_.expert_module_name(t.layer, t.expert, ExpertProj::kUp);
    std::vector<const char*> scalars{"weight_scale_2", "input_scale"};
    // fp8's weight_scale is the per-tensor scalar; nvfp4's is per block and differs legitimately.
    if (options_.format == QuantFormat::kFP8) scalars.push_back("weight_scale");
    for (const char* suffix : scalars) {
      auto g = cache_.find(gate + "." + suffix);
      auto u = cache_.find(up + "." + suffix);
      if (g == cache_.end() || u == cache_.end()) continue;
      MQ_CHECK(at::equal(g->second, u->second), "gate and up of layer ", t.layer, " expert ",
               t.expert, " have different ", suffix);
    }
  }

  const HfMoeConfig& config_;
  const dist::ParallelState& ps_;
  dist::Communicator& world_;
  ExpertSource& experts_;
  const io::CheckpointFolder* source_;
  DType expert_dtype_;
  const ExportOptions& options_;
  const ExportPlan& plan_;
  const int me_;
  const bool input_scales_;
  std::map<std::string, at::Tensor> cache_;  // produced, not yet emitted: one unit at most
  std::unique_ptr<io::SafetensorsWriter> writer_;
  std::vector<uint8_t> recv_buffer_;
  std::vector<std::string> written_;
  std::vector<std::string> warnings_;
};

std::vector<PassthroughTensor> passthrough_tensors(const HfMoeConfig& config,
                                                   const io::CheckpointFolder* source) {
  std::vector<PassthroughTensor> out;
  if (source == nullptr) return out;
  for (const std::string& name : source->names()) {
    const int layer = layer_of_name(name);
    if (layer >= 0 && config.is_moe_layer(layer) &&
        name.rfind(config.experts_prefix(layer) + ".", 0) == 0)
      continue;  // routed-expert tensors are produced by the experts
    const io::TensorInfo& info = source->info(name);
    out.push_back({name, info.dtype, info.shape});
  }
  return out;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Every planned tensor written exactly once, across all ranks (a collective check).
std::string check_all_written(dist::Communicator& world, const ExportPlan& plan,
                              const std::vector<std::string>& written) {
  const std::vector<std::string> per_rank = world.all_gather_bytes(join(written, "\n"));
  std::map<std::string, int> count;
  for (const std::string& r : per_rank)
    for (const std::string& name : split_lines(r)) ++count[name];
  std::vector<std::string> missing, duplicated;
  for (const PlannedTensor& t : plan.tensors) {
    const int c = count[t.name];
    if (c == 0) missing.push_back(t.name);
    if (c > 1) duplicated.push_back(t.name);
  }
  if (missing.empty() && duplicated.empty() && count.size() == plan.tensors.size()) return "";
  if (missing.size() > 10) missing.resize(10);
  return str_cat("export incomplete: ", missing.size(), " missing tensor(s) [", join(missing, ", "),
                 "], ", duplicated.size(), " written twice [", join(duplicated, ", "), "]");
}

}  // namespace

ExportSummary export_checkpoint(const HfMoeConfig& config, const dist::ParallelState& ps,
                                dist::Communicator& world, ExpertSource& experts,
                                const io::CheckpointFolder* source_ckpt, DType expert_dtype,
                                const ExportOptions& options) {
  MQ_CHECK(world.size() == ps.world_size() && world.rank() == ps.rank(),
           "export: communicator (rank ", world.rank(), " of ", world.size(),
           ") does not match the parallel layout (rank ", ps.rank(), " of ", ps.world_size(), ")");
  PlanOptions po;
  po.format = options.format;
  po.input_scales = options.input_scales;
  po.exclude = options.exclude;
  po.max_shard_bytes = options.max_shard_bytes;
  po.expert_dtype = expert_dtype;
  // Planning is deterministic and identical everywhere; with the producers' prechecks and the
  // output folder's preparation it is agreed in one step before any byte moves.
  ExportPlan plan;
  std::unique_ptr<ExportRun> run;
  std::string error;
  try {
    plan = make_export_plan(config, ps, passthrough_tensors(config, source_ckpt), po);
    run = std::make_unique<ExportRun>(config, ps, world, experts, source_ckpt, expert_dtype,
                                      options, plan);
    error = run->precheck();
    if (world.rank() == 0 && error.empty()) prepare_partial_dir(options.out_dir, options.overwrite);
  } catch (const std::exception& e) {
    error = e.what();
  }
  dist::agree_on_error(world, error);

  // From here a failure on one rank leaves peers waiting on a transfer: the deadlines of the
  // communicator bound that wait, and the tool ends the whole job (dist::abort_job).
  run->stream();
  error = check_all_written(world, plan, run->written());
  const std::vector<std::string> all_warnings = world.all_gather_bytes(join(run->warnings(), "\n"));
  dist::agree_on_error(world, error);

  if (world.rank() == 0) {
    try {
      // Expert projections the user excluded, by their concrete module names.
      std::vector<std::string> excluded, passthrough_modules;
      for (const PlannedTensor& t : plan.tensors) {
        const std::string weight = ".weight";
        if (t.source == TensorSource::kPassthrough) {
          if (t.shape.size() == 2 && t.name.size() > weight.size() &&
              t.name.compare(t.name.size() - weight.size(), weight.size(), weight) == 0)
            passthrough_modules.push_back(t.name.substr(0, t.name.size() - weight.size()));
          continue;
        }
        const std::string module = t.name.substr(0, t.name.rfind('.'));
        if (options.format != QuantFormat::kNone && t.format == QuantFormat::kNone &&
            (excluded.empty() || excluded.back() != module))
          excluded.push_back(module);
      }
      const std::string dir = partial_dir_for(options.out_dir);
      std::map<std::string, std::string> weight_map;
      for (const PlannedTensor& t : plan.tensors) weight_map[t.name] = plan.files[t.file].name;
      io::write_index(dir + "/model.safetensors.index.json", plan.total_bytes, weight_map);
      write_text_file(
          dir + "/config.json",
          exported_config(config, options.format, excluded, passthrough_modules).dump(2) + "\n");
      if (auto hq = hf_quant_config(config, options.format, excluded))
        write_text_file(dir + "/hf_quant_config.json", hq->dump(2) + "\n");
      publish_partial_dir(options.out_dir, options.overwrite);
      error.clear();
    } catch (const std::exception& e) {
      error = e.what();
      discard_partial_dir(options.out_dir);
    }
  }
  dist::agree_on_error(world, error);

  ExportSummary summary;
  summary.tensors = plan.tensors.size();
  summary.files = plan.files.size();
  summary.bytes = plan.total_bytes;
  for (const PlannedTensor& t : plan.tensors) {
    if (t.source == TensorSource::kPassthrough || t.format == QuantFormat::kNone) continue;
    if (t.suffix == "weight" || t.suffix == "qweight")  // gate, up, down: H x I each
      summary.quantized_params += static_cast<uint64_t>(config.hidden) * config.intermediate;
    summary.quantized_bytes += t.nbytes;
  }
  std::set<std::string> unique;
  for (const std::string& r : all_warnings)
    for (const std::string& w : split_lines(r)) unique.insert(w);
  if (!unique.empty())
    summary.warnings.push_back(
        str_cat(unique.size(),
                " uncalibrated expert weight quantizer(s) fell back to "
                "the weight's own amax: ",
                join(std::vector<std::string>(unique.begin(), unique.end()), ", ")));
  return summary;
}

}  // namespace moequant
