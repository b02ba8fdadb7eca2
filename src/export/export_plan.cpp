#include "moequant/export/export_plan.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>

#include "moequant/calib/calibrate.h"
#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/export/exclude_patterns.h"
#include "moequant/io/safetensors.h"
#include "moequant/model/decoder_config.h"

namespace moequant {

namespace {

uint64_t bytes_of(DType t, const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n * static_cast<uint64_t>(dtype_size(t));
}

// Write order inside the file set: embeddings first, then layer by layer (dense tensors by
// name, then experts by global index, gate/up/down), then what follows the layers.
struct OrderKey {
  int layer_rank;
  int group;  // 0 dense, 1 experts
  int expert;
  int proj;
  int suffix;
  std::string name;
  bool operator<(const OrderKey& o) const {
    return std::tie(layer_rank, group, expert, proj, suffix, name) <
           std::tie(o.layer_rank, o.group, o.expert, o.proj, o.suffix, o.name);
  }
};

// An engine runs one quantization method per fused MoE layer: all of a layer's expert
// projections share one format (GPTQ's per-module dynamic overrides excepted).
void check_whole_layers(const ModelConfig& config, const std::vector<PlannedTensor>& tensors,
                        QuantFormat format) {
  if (format == QuantFormat::kINT4 || format == QuantFormat::kNone) return;
  std::map<int, std::set<std::string>> quantized, excluded;
  for (const PlannedTensor& t : tensors) {
    const bool expert =
        t.source == TensorSource::kExpertFc1 || t.source == TensorSource::kExpertFc2;
    if (!expert || (t.suffix != "weight" && t.suffix != "qweight")) continue;
    const std::string module = config.expert_module_name(t.layer, t.expert, t.proj);
    (t.format == QuantFormat::kNone ? excluded : quantized)[t.layer].insert(module);
  }
  for (const auto& [layer, names] : excluded) {
    if (quantized[layer].empty()) continue;
    MQ_THROW("--exclude leaves ", names.size(), " of ", names.size() + quantized[layer].size(),
             " expert projections of layer ", layer, " unquantized (e.g. '", *names.begin(),
             "'): serving engines run all experts of a layer as one fused MoE with one "
             "quantization method, so exclude every expert projection of the layer or none "
             "(only --format int4 allows per-module exclusions)");
  }
}

// Producers of everything but the routed experts (passthrough tensors, dense linears, KV
// scales): each goes to the least loaded rank of the stage that holds its layer (by bytes, expert
// units counted), so that writing them is spread like the experts. A dense linear's tensors are
// one job (one rank quantizes the weight and writes its scales). Largest first (embedding and
// lm_head before the small projections), or one rank gets a large tensor on top of every small
// one.
void assign_stage_producers(const ModelConfig& config, const parallel::ParallelState& ps,
                            std::vector<PlannedTensor>& tensors) {
  std::vector<uint64_t> load(ps.world_size(), 0);
  std::vector<std::vector<PlannedTensor*>> jobs;
  std::map<std::string, size_t> dense_job;  // source weight -> index in jobs
  for (PlannedTensor& t : tensors) {
    if (t.source == TensorSource::kExpertFc1 || t.source == TensorSource::kExpertFc2) {
      load[t.producer] += t.nbytes;
    } else if (t.source == TensorSource::kDense) {
      auto [it, fresh] = dense_job.emplace(t.source_name, jobs.size());
      if (fresh) jobs.emplace_back();
      jobs[it->second].push_back(&t);
    } else {
      jobs.push_back({&t});
    }
  }
  auto bytes = [](const std::vector<PlannedTensor*>& job) {
    uint64_t n = 0;
    for (const PlannedTensor* t : job) n += t->nbytes;
    return n;
  };
  std::stable_sort(jobs.begin(), jobs.end(),
                   [&](const auto& a, const auto& b) { return bytes(a) > bytes(b); });
  const int last_stage = ps.sizes().pp - 1;
  for (const std::vector<PlannedTensor*>& job : jobs) {
    const PlannedTensor& t = *job.front();
    const TensorPlace place = config.place_of(t.name);
    int layer;
    if (place.kind == TensorPlace::kLayer && place.layer < config.num_layers)
      layer = place.layer;
    else if (place.kind == TensorPlace::kBeforeLayers)
      layer = static_cast<int>(ps.stage_layers(0).begin);
    else  // after the layers, or an extra (MTP) layer past them: the last stage
      layer = static_cast<int>(ps.stage_layers(last_stage).begin);
    int best = -1;
    for (int r : ps.dense_holders(layer))
      if (best < 0 || load[r] < load[best] || (load[r] == load[best] && r < best)) best = r;
    for (PlannedTensor* member : job) member->producer = best;
    load[best] += bytes(job);
  }
}

// Consecutive tensors up to max_shard_bytes per file (a larger tensor gets a file of its own);
// each file's complete header and every tensor's offset in it.
void lay_out_files(ExportPlan& plan, uint64_t max_shard_bytes) {
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const uint64_t n = plan.tensors[i].nbytes;
    if (plan.files.empty() ||
        (plan.files.back().data_bytes > 0 && plan.files.back().data_bytes + n > max_shard_bytes)) {
      PlannedFile f;
      f.first = i;
      plan.files.push_back(f);
    }
    PlannedFile& f = plan.files.back();
    f.last = i;
    f.data_bytes += n;
    plan.tensors[i].file = static_cast<int>(plan.files.size() - 1);
  }
  const size_t nfiles = plan.files.size();
  for (size_t k = 0; k < nfiles; ++k) {
    PlannedFile& f = plan.files[k];
    char buf[64];
    std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", k + 1, nfiles);
    f.name = buf;
    std::vector<io::TensorSpec> specs;
    for (size_t i = f.first; i <= f.last; ++i)
      specs.push_back({plan.tensors[i].name, plan.tensors[i].dtype, plan.tensors[i].shape});
    f.header = io::file_start(specs, {{"format", "pt"}});
    uint64_t offset = f.header.size();
    for (size_t i = f.first; i <= f.last; ++i) {
      plan.tensors[i].offset = offset;
      offset += plan.tensors[i].nbytes;
    }
  }
}

// The linear modules of the model in plan order: the source's 2-D weights that are no
// embedding, every expert projection, each MoE layer's fused experts module after its experts
// (the name vLLM and transformers ask about; left out where GPTQ stores a layer partly
// quantized), and lm_head even when it is tied to the embedding.
std::vector<PlannedModule> linear_modules(const ModelConfig& config,
                                          const std::vector<PlannedTensor>& tensors) {
  std::vector<PlannedModule> out;
  std::set<std::string> seen;
  std::map<int, std::set<bool>> layer_states;
  std::map<int, size_t> last_of_layer;  // index in `out` of a layer's last expert module
  std::vector<std::string> mtp_experts;
  const std::string weight = ".weight";
  for (const PlannedTensor& t : tensors) {
    std::string module;
    bool quantized = false;
    if (t.source == TensorSource::kKvScale) continue;
    if (t.source == TensorSource::kPassthrough) {
      if (t.shape.size() != 2 || !ends_with(t.name, weight) || ModelConfig::is_embedding(t.name))
        continue;
      module = t.name.substr(0, t.name.size() - weight.size());
    } else if (t.source == TensorSource::kDense) {
      module = t.source_name.substr(0, t.source_name.size() - weight.size());
      quantized = t.format != QuantFormat::kNone;
    } else {
      module = config.expert_module_name(t.layer, t.expert, t.proj);
      quantized = t.format != QuantFormat::kNone;
      layer_states[t.layer].insert(quantized);
    }
    if (!seen.insert(module).second) continue;
    const bool expert =
        t.source == TensorSource::kExpertFc1 || t.source == TensorSource::kExpertFc2;
    if (expert) last_of_layer[t.layer] = out.size();
    out.push_back({module, quantized});
    // An extra (MTP) layer's experts are carried over unquantized: their fused MoE module too.
    if (t.source == TensorSource::kPassthrough && t.layer >= config.num_layers &&
        starts_with(module, config.experts_prefix(t.layer) + ".") &&
        seen.insert(config.experts_prefix(t.layer)).second)
      mtp_experts.push_back(config.experts_prefix(t.layer));
  }
  std::vector<PlannedModule> with_layers;
  std::map<size_t, int> layer_after;
  for (const auto& [layer, index] : last_of_layer) layer_after[index] = layer;
  for (size_t i = 0; i < out.size(); ++i) {
    with_layers.push_back(out[i]);
    auto it = layer_after.find(i);
    if (it == layer_after.end()) continue;
    const std::set<bool>& states = layer_states[it->second];
    if (states.size() == 1)
      with_layers.push_back({config.experts_prefix(it->second), *states.begin()});
  }
  for (const std::string& m : mtp_experts) with_layers.push_back({m, false});
  for (const std::string& m : ModelConfig::implicit_linear_modules())
    if (seen.insert(m).second) with_layers.push_back({m, false});
  return with_layers;
}

}  // namespace

std::vector<std::string> ExportPlan::unquantized_modules() const {
  std::vector<std::string> out;
  for (const PlannedModule& m : modules)
    if (!m.quantized) out.push_back(m.name);
  return out;
}

bool is_excluded(const std::string& module, const std::vector<std::string>& exclude) {
  for (const std::string& p : exclude)
    if (pattern_matches(p, module)) return true;
  return false;
}

QuantFormat expert_format(const ModelConfig& config, int layer, int expert, ExpertProj proj,
                          QuantFormat format, const std::vector<std::string>& exclude) {
  auto module = [&](ExpertProj p) { return config.expert_module_name(layer, expert, p); };
  const bool excluded = proj == ExpertProj::kDown
                            ? is_excluded(module(proj), exclude)
                            : is_excluded(module(ExpertProj::kGate), exclude) ||
                                  is_excluded(module(ExpertProj::kUp), exclude);
  return excluded ? QuantFormat::kNone : format;
}

std::vector<StoredTensorSpec> planned_outputs(QuantFormat format, int64_t rows, int64_t cols,
                                              DType source, bool input_scale,
                                              const std::string& name) {
  const FormatDescriptor& f = format_descriptor(format);
  std::vector<StoredTensorSpec> out = f.stored_tensors(rows, cols, source, name);
  if (input_scale && f.has_static_activations())
    out.push_back({"input_scale", DType::kF32, {}, StoredRole::kScale});
  return out;
}

std::vector<std::string> check_engine_shape_rules(const ModelConfig& config, QuantFormat format,
                                                  bool allow_partial_blocks) {
  const FormatDescriptor& f = format_descriptor(format);
  const int64_t multiple = f.moe_intermediate_multiple, I = config.intermediate;
  if (multiple == 0) return {};
  if (I % multiple == 0) {
    // Served with tensor parallelism, each rank's share must be a multiple too.
    int64_t tp = 1;
    while (I % (2 * tp * multiple) == 0) tp *= 2;
    return {str_cat(f.name, ": vLLM and SGLang serve these experts (intermediate size ", I,
                    ") with tensor parallel sizes up to ", tp, " (", I,
                    " / TP must stay a multiple of ", multiple, ")")};
  }
  const std::string rule =
      str_cat(f.name, ": the expert intermediate size ", I, " is not a multiple of ", multiple,
              ", which vLLM's and SGLang's fused MoE require (vLLM Fp8MoEMethod.create_weights; "
              "docs/formats.md, \"Engine shape rules\")");
  MQ_CHECK(allow_partial_blocks, rule,
           ": pass --allow-partial-blocks to write it for transformers and TensorRT-LLM anyway");
  return {rule + ": written anyway (--allow-partial-blocks); vLLM and SGLang will not load it"};
}

std::vector<DenseLinear> quantized_dense_linears(const ModelConfig& config,
                                                 const std::vector<std::string>& exclude) {
  const std::vector<DenseLinear> all = dense_linears(config, decoder_config(config));
  std::vector<DenseLinear> out;
  for (const DenseLinear& l : all) {
    bool excluded = false;
    for (const DenseLinear* m : fusion_members(all, l.layer, l.group))
      excluded = excluded || is_excluded(m->module, exclude);
    if (!excluded) out.push_back(l);
  }
  return out;
}

std::string kv_scale_name(const ModelConfig& config, int layer, bool keys) {
  const DecoderConfig d = decoder_config(config);
  MQ_CHECK(d.attention == AttentionKind::kGqa, "internal: no KV-cache scale rule for ",
           config.model_type, "'s attention");
  const TensorSet tensors = layer_tensors(config, d, layer);
  const std::string& w = tensors.get(keys ? TensorUse::kK : TensorUse::kV).name;
  return w.substr(0, w.rfind('.')) + (keys ? ".k_scale" : ".v_scale");
}

ExportPlan make_export_plan(const ModelConfig& config, const parallel::ParallelState& ps,
                            const std::vector<PassthroughTensor>& passthrough,
                            const PlanOptions& options) {
  check_exclude_patterns(config, options.exclude, options.quantize_dense);
  std::vector<std::string> notes =
      check_engine_shape_rules(config, options.scheme.format, options.allow_partial_blocks);
  const QuantFormat format = options.scheme.format;
  const bool input_scales = options.scheme.static_activations;
  std::map<std::string, DenseLinear> dense;  // quantized dense linears by source weight name
  std::map<std::string, std::vector<std::string>> dense_suffixes;  // in the order produced
  if (options.quantize_dense && format != QuantFormat::kNone)
    for (DenseLinear& l : quantized_dense_linears(config, options.exclude))
      dense.emplace(l.weight, std::move(l));
  std::vector<std::pair<OrderKey, PlannedTensor>> keyed;
  for (const PassthroughTensor& p : passthrough) {
    auto dl = dense.find(p.name);
    if (dl != dense.end()) {  // quantized: its weight's stored tensors instead of the weight
      const DenseLinear& l = dl->second;
      MQ_CHECK(p.shape == l.shape, "tensor '", p.name, "' has shape ", shape_string(p.shape),
               ", expected ", shape_string(l.shape), " from config.json");
      for (const StoredTensorSpec& o :
           planned_outputs(format, l.shape[0], l.shape[1], p.dtype, input_scales, p.name)) {
        PlannedTensor t;
        t.name = l.module + "." + o.suffix;
        t.dtype = o.dtype;
        t.shape = o.shape;
        t.source = TensorSource::kDense;
        t.layer = l.layer;
        t.format = format;
        t.suffix = o.suffix;
        t.source_name = p.name;
        dense_suffixes[p.name].push_back(o.suffix);
        keyed.push_back({OrderKey{l.layer, 0, 0, 0, 0, t.name}, t});
      }
      continue;
    }
    PlannedTensor t;
    t.name = t.source_name = p.name;
    t.dtype = p.dtype;
    t.shape = p.shape;
    t.source = TensorSource::kPassthrough;
    const TensorPlace place = config.place_of(p.name);
    // Final norm, lm_head: after the layers (the extra MTP layers included).
    int layer_rank = config.num_layers + config.extra_layers;
    if (place.kind == TensorPlace::kLayer) {
      MQ_CHECK(config.holds_layer(place.layer), "tensor '", p.name, "' names layer ", place.layer,
               " but config.json has ", config.num_layers, " layers",
               config.extra_layers ? str_cat(" and ", config.extra_layers, " MTP layer(s)") : "");
      t.layer = layer_rank = place.layer;
    } else if (place.kind == TensorPlace::kBeforeLayers) {
      layer_rank = -1;
    }
    keyed.push_back({OrderKey{layer_rank, 0, 0, 0, 0, p.name}, t});
  }
  if (options.scheme.kv_cache_fp8)
    for (int layer = 0; layer < config.num_layers; ++layer)
      for (const bool keys : {true, false}) {
        PlannedTensor t;
        t.name = kv_scale_name(config, layer, keys);
        t.dtype = DType::kF32;
        t.source = TensorSource::kKvScale;
        t.layer = layer;
        t.suffix = keys ? "k_scale" : "v_scale";
        keyed.push_back({OrderKey{layer, 0, 0, 0, 0, t.name}, t});
      }
  const int64_t I = config.intermediate, H = config.hidden;
  for (int layer : config.moe_layers) {
    for (int e = 0; e < config.num_experts; ++e) {
      const int producer = ps.expert_producer(layer, e);
      int proj_index = 0;
      for (ExpertProj proj : {ExpertProj::kGate, ExpertProj::kUp, ExpertProj::kDown}) {
        const bool down = proj == ExpertProj::kDown;
        const std::string base = config.expert_module_name(layer, e, proj);
        const QuantFormat f = expert_format(config, layer, e, proj, format, options.exclude);
        const auto outs = planned_outputs(f, down ? H : I, down ? I : H, options.expert_dtype,
                                          input_scales, base + ".weight");
        int suffix_index = 0;
        for (const StoredTensorSpec& o : outs) {
          PlannedTensor t;
          t.name = base + "." + o.suffix;
          t.dtype = o.dtype;
          t.shape = o.shape;
          t.source = down ? TensorSource::kExpertFc2 : TensorSource::kExpertFc1;
          t.layer = layer;
          t.expert = e;
          t.proj = proj;
          t.format = f;
          t.suffix = o.suffix;
          t.producer = producer;
          keyed.push_back({OrderKey{layer, 1, e, proj_index, suffix_index++, t.name}, t});
        }
        ++proj_index;
      }
    }
  }
  std::sort(keyed.begin(), keyed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });

  ExportPlan plan;
  plan.scheme = options.scheme;
  plan.notes = std::move(notes);
  for (auto& kt : keyed) {
    kt.second.nbytes = bytes_of(kt.second.dtype, kt.second.shape);
    plan.total_bytes += kt.second.nbytes;
    plan.tensors.push_back(std::move(kt.second));
  }
  for (size_t i = 1; i < plan.tensors.size(); ++i)
    MQ_CHECK(plan.tensors[i].name != plan.tensors[i - 1].name, "tensor '", plan.tensors[i].name,
             "' would be written twice (the source holds it and an expert produces it)");
  check_whole_layers(config, plan.tensors, format);
  assign_stage_producers(config, ps, plan.tensors);
  lay_out_files(plan, options.max_shard_bytes);
  plan.modules = linear_modules(config, plan.tensors);

  std::map<std::string, size_t> dense_unit;  // source weight -> index in plan.units
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const PlannedTensor& t = plan.tensors[i];
    if (t.source == TensorSource::kPassthrough || t.source == TensorSource::kKvScale) continue;
    if (t.source == TensorSource::kDense) {
      auto [it, fresh] = dense_unit.emplace(t.source_name, plan.units.size());
      if (fresh) {
        PlannedUnit u{t.layer, -1, false, t.producer, t.format, {t.source_name}, {}, {}};
        u.dense = dense.at(t.source_name);
        plan.units.push_back(std::move(u));
      }
      plan.units[it->second].tensors.push_back(i);
      continue;
    }
    const bool fc1 = t.source == TensorSource::kExpertFc1;
    const PlannedUnit* last = plan.units.empty() ? nullptr : &plan.units.back();
    if (!last || last->dense || last->layer != t.layer || last->expert != t.expert ||
        last->fc1 != fc1)
      plan.units.push_back({t.layer, t.expert, fc1, t.producer, t.format, {}, {}, {}});
    PlannedUnit& unit = plan.units.back();
    const std::string weight = config.expert_weight_name(t.layer, t.expert, t.proj);
    if (unit.weights.empty() || unit.weights.back() != weight) unit.weights.push_back(weight);
    unit.tensors.push_back(i);
  }
  // A dense unit's tensors in the order its producer emits them (weight, scales, input_scale),
  // not the file order (by name).
  for (PlannedUnit& u : plan.units) {
    if (!u.dense) continue;
    const std::vector<std::string>& order = dense_suffixes.at(u.weights.front());
    auto rank = [&](size_t i) {
      return std::find(order.begin(), order.end(), plan.tensors[i].suffix) - order.begin();
    };
    std::sort(u.tensors.begin(), u.tensors.end(),
              [&](size_t a, size_t b) { return rank(a) < rank(b); });
  }
  return plan;
}

}  // namespace moequant
