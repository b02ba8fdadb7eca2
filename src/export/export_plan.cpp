#include "moequant/export/export_plan.h"

#include <algorithm>
#include <cstdio>
#include <tuple>

#include "moequant/core/calibrate.h"
#include "moequant/core/error.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

namespace {

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

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

}  // namespace

int layer_of_name(const std::string& name) {
  static const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return -1;
  size_t end = prefix.size();
  while (end < name.size() && isdigit(static_cast<unsigned char>(name[end]))) ++end;
  if (end == prefix.size()) return -1;
  return std::stoi(name.substr(prefix.size(), end - prefix.size()));
}

bool is_excluded(const std::string& module, const std::vector<std::string>& exclude) {
  for (const std::string& p : exclude)
    if (pattern_matches(p, module)) return true;
  return false;
}

QuantFormat expert_format(const HfMoeConfig& config, int layer, int expert, ExpertProj proj,
                          QuantFormat format, const std::vector<std::string>& exclude) {
  auto module = [&](ExpertProj p) { return config.expert_module_name(layer, expert, p); };
  const bool excluded = proj == ExpertProj::kDown
                            ? is_excluded(module(proj), exclude)
                            : is_excluded(module(ExpertProj::kGate), exclude) ||
                                  is_excluded(module(ExpertProj::kUp), exclude);
  return excluded ? QuantFormat::kNone : format;
}

std::vector<OutputSpec> quantized_outputs(QuantFormat format, int64_t rows, int64_t cols,
                                          DType source, bool input_scale, const std::string& name) {
  std::vector<OutputSpec> out;
  switch (format) {
    case QuantFormat::kNone:
      return {{"weight", source, {rows, cols}}};
    case QuantFormat::kFP8:
      out = {{"weight", DType::kF8E4M3, {rows, cols}}, {"weight_scale", DType::kF32, {}}};
      break;
    case QuantFormat::kNVFP4:
      MQ_CHECK(cols % num::kNvfp4Block == 0, name, ": nvfp4 needs in % 16 == 0, got shape [", rows,
               ", ", cols, "]");
      out = {{"weight", DType::kU8, {rows, cols / 2}},
             {"weight_scale", DType::kF8E4M3, {rows, cols / num::kNvfp4Block}},
             {"weight_scale_2", DType::kF32, {}}};
      break;
    case QuantFormat::kFP8Block:
      return {{"weight", DType::kF8E4M3, {rows, cols}},
              {"weight_scale_inv",
               DType::kF32,
               {ceil_div(rows, num::kFp8Tile), ceil_div(cols, num::kFp8Tile)}}};
    case QuantFormat::kINT4: {
      MQ_CHECK(rows % 8 == 0 && cols % 8 == 0, name,
               ": int4 needs out % 8 == 0 and in % 8 == 0, got shape [", rows, ", ", cols, "]");
      const int64_t g = ceil_div(cols, num::kInt4Group);
      return {{"qweight", DType::kI32, {cols / 8, rows}},
              {"qzeros", DType::kI32, {g, rows / 8}},
              {"scales", DType::kF16, {g, rows}},
              {"g_idx", DType::kI32, {cols}}};
    }
  }
  if (input_scale) out.push_back({"input_scale", DType::kF32, {}});
  return out;
}

ExportPlan make_export_plan(const HfMoeConfig& config, const dist::ParallelState& ps,
                            const std::vector<PassthroughTensor>& passthrough,
                            const PlanOptions& options) {
  std::vector<std::pair<OrderKey, PlannedTensor>> keyed;
  const int last_stage = ps.sizes().pp - 1;
  for (const PassthroughTensor& p : passthrough) {
    PlannedTensor t;
    t.name = t.source_name = p.name;
    t.dtype = p.dtype;
    t.shape = p.shape;
    t.source = TensorSource::kPassthrough;
    t.layer = layer_of_name(p.name);
    int layer_rank;
    if (t.layer >= 0) {
      MQ_CHECK(t.layer < config.num_layers, "tensor '", p.name, "' names layer ", t.layer,
               " but config.json has ", config.num_layers, " layers");
      layer_rank = t.layer;
      t.producer = ps.dense_writer(t.layer);
    } else if (p.name.find("embed") != std::string::npos) {
      layer_rank = -1;  // embeddings live on the first stage
      t.producer = ps.stage_writer(0);
    } else {
      layer_rank = config.num_layers;  // final norm, lm_head: the last stage
      t.producer = ps.stage_writer(last_stage);
    }
    keyed.push_back({OrderKey{layer_rank, 0, 0, 0, 0, p.name}, t});
  }
  const int64_t I = config.intermediate, H = config.hidden;
  const bool input_scales = options.input_scales && (options.format == QuantFormat::kFP8 ||
                                                     options.format == QuantFormat::kNVFP4);
  for (int layer : config.moe_layers) {
    for (int e = 0; e < config.num_experts; ++e) {
      const int producer = ps.expert_writer(layer, e);
      int proj_index = 0;
      for (ExpertProj proj : {ExpertProj::kGate, ExpertProj::kUp, ExpertProj::kDown}) {
        const bool down = proj == ExpertProj::kDown;
        const std::string base = config.expert_module_name(layer, e, proj);
        const QuantFormat format =
            expert_format(config, layer, e, proj, options.format, options.exclude);
        const auto outs = quantized_outputs(format, down ? H : I, down ? I : H,
                                            options.expert_dtype, input_scales, base + ".weight");
        int suffix_index = 0;
        for (const OutputSpec& o : outs) {
          PlannedTensor t;
          t.name = base + "." + o.suffix;
          t.dtype = o.dtype;
          t.shape = o.shape;
          t.source = down ? TensorSource::kExpertFc2 : TensorSource::kExpertFc1;
          t.layer = layer;
          t.expert = e;
          t.proj = proj;
          t.format = format;
          t.suffix = o.suffix;
          t.producer = producer;
          t.unit_start = suffix_index == 0 && proj != ExpertProj::kUp;
          keyed.push_back({OrderKey{layer, 1, e, proj_index, suffix_index++, t.name}, t});
        }
        ++proj_index;
      }
    }
  }
  std::sort(keyed.begin(), keyed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });

  ExportPlan plan;
  for (auto& kt : keyed) {
    kt.second.nbytes = bytes_of(kt.second.dtype, kt.second.shape);
    plan.total_bytes += kt.second.nbytes;
    plan.tensors.push_back(std::move(kt.second));
  }
  for (size_t i = 1; i < plan.tensors.size(); ++i)
    MQ_CHECK(plan.tensors[i].name != plan.tensors[i - 1].name, "tensor '", plan.tensors[i].name,
             "' would be written twice (the source holds it and an expert produces it)");

  // Files: consecutive tensors up to max_shard_bytes (a larger tensor gets a file of its own).
  // Each file's writer is the producer of its first tensor, so most bytes never travel.
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const uint64_t n = plan.tensors[i].nbytes;
    if (plan.files.empty() || plan.files.back().bytes + n > options.max_shard_bytes) {
      if (plan.files.empty() || plan.files.back().bytes > 0) {
        PlannedFile f;
        f.first = i;
        f.owner = plan.tensors[i].producer;
        plan.files.push_back(f);
      }
    }
    PlannedFile& f = plan.files.back();
    f.last = i;
    f.bytes += n;
    plan.tensors[i].file = static_cast<int>(plan.files.size() - 1);
  }
  const size_t nfiles = plan.files.size();
  for (size_t k = 0; k < nfiles; ++k) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", k + 1, nfiles);
    plan.files[k].name = buf;
  }
  return plan;
}

}  // namespace moequant
