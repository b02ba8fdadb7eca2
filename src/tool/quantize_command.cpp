// `moequant quantize`: load this rank's shards of a Hugging Face MoE checkpoint, calibrate the
// expert weights, synchronize amax over the parallel groups and export the quantized folder.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "commands.h"
#include "moequant/core/amax_sync.h"
#include "moequant/core/calibrate.h"
#include "moequant/core/error.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/dist/error_agreement.h"
#include "moequant/dist/job_abort.h"
#include "moequant/dist/process_groups.h"
#include "moequant/export/export_plan.h"
#include "moequant/export/exporter.h"
#include "moequant/export/output_folder.h"
#include "moequant/hf/hf_moe_model.h"
#include "progress.h"
#include "synthetic_model.h"
#include "world.h"

namespace moequant::tool {

CLI::App* add_quantize_command(CLI::App& app, QuantizeArgs& a) {
  CLI::App* c = app.add_subcommand(
      "quantize",
      "Quantize the routed experts of a Hugging Face MoE checkpoint (Qwen3-MoE or Mixtral "
      "naming) and write a checkpoint that serving engines load. With no --model it runs on a "
      "small built-in model.");
  c->add_option("--model", a.model, "Hugging Face model folder (config.json + safetensors)");
  c->add_option("--format", a.format, "Output format")
      ->check(CLI::IsMember({"none", "fp8", "nvfp4", "fp8_block", "int4"}))
      ->capture_default_str();
  c->add_option("--out", a.out, "Output folder (must not exist unless --overwrite)");
  c->add_option("--tp", a.tp, "Tensor-parallel size (dense layers)")->check(CLI::PositiveNumber);
  c->add_option("--ep", a.ep, "Expert-parallel size (default: all ranks when no size is given)")
      ->check(CLI::PositiveNumber);
  c->add_option("--etp", a.etp, "Expert-tensor-parallel size")->check(CLI::PositiveNumber);
  c->add_option("--pp", a.pp, "Pipeline-parallel size")->check(CLI::PositiveNumber);
  c->add_option("--exclude", a.exclude,
                "Leave matching expert projections unquantized (glob, or re:REGEX on names like "
                "model.layers.3.mlp.experts.5.gate_proj); repeatable");
  c->add_flag("--overwrite", a.overwrite, "Replace an existing output folder");
  c->add_option("--expert-amax", a.expert_amax,
                "shared: one amax per grouped linear (Transformer Engine's way, reduced over ETP "
                "and EP); per-expert: one per expert (reduced over ETP)")
      ->check(CLI::IsMember({"shared", "per-expert"}))
      ->capture_default_str();
  c->add_option("--device", a.device, "Where weights are calibrated and quantized: cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  c->add_option("--max-shard-size", a.max_shard_size, "Largest output shard file (e.g. 5GB, 200MB)")
      ->capture_default_str();
  c->add_option("--timeout", a.timeout_s,
                "Seconds before a collective with a dead or stuck peer fails (default: "
                "$MOEQUANT_COLLECTIVE_TIMEOUT_S or 600)")
      ->check(CLI::PositiveNumber);
  c->add_flag("--quiet,-q", a.quiet, "Print only errors");
  c->add_flag("--no-table", a.no_table, "Skip the per-quantizer statistics table");
  return c;
}

uint64_t parse_size(const std::string& text, const std::string& flag) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    MQ_THROW(flag, ": cannot read size '", text, "' (expected e.g. 5GB, 200MB, 1000000)");
  }
  const std::string unit = text.substr(pos);
  static const std::map<std::string, double> units = {
      {"", 1},     {"B", 1},        {"KB", 1e3},        {"MB", 1e6},
      {"GB", 1e9}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
  auto it = units.find(unit);
  MQ_CHECK(it != units.end() && value > 0, flag, ": cannot read size '", text,
           "' (expected e.g. 5GB, 200MB, 1000000)");
  return static_cast<uint64_t>(value * it->second);
}

namespace {

struct Timer {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

// Runs `step` on every rank and agrees on its outcome: an error anywhere fails every rank of
// `world` with the message of the rank that found it.
template <typename Fn>
void agreed_step(dist::Communicator& world, Fn&& step) {
  std::string error;
  try {
    step();
  } catch (const std::exception& e) {
    error = e.what();
  }
  dist::agree_on_error(world, error);  // throws AgreedError on every rank when one failed
}

// Rank 0 makes the built-in model in a fresh temporary folder; every rank learns its path.
std::string builtin_model_dir(dist::Communicator& world, bool quiet) {
  std::string dir;
  agreed_step(world, [&] {
    if (world.rank() != 0) return;
    char tmpl[] = "/tmp/moequant-builtin-XXXXXX";
    MQ_CHECK(::mkdtemp(tmpl) != nullptr, "cannot create a temporary folder in /tmp");
    dir = std::string(tmpl) + "/qwen3moe-tiny";
    SyntheticModelSpec spec;
    spec.layers = 4;
    spec.experts = 16;
    spec.hidden = 256;
    spec.intermediate = 128;
    spec.shards = 2;
    write_synthetic_model(dir, spec);
    if (!quiet)
      std::printf(
          "No --model given: using a built-in Qwen3-MoE-shaped model (4 layers, 16 "
          "experts, hidden 256, expert intermediate 128) written to %s\n",
          dir.c_str());
  });
  return world.all_gather_bytes(dir)[0];
}

dist::ParallelSizes layout_from(const QuantizeArgs& a, int world) {
  dist::ParallelSizes s;
  const bool any = a.tp || a.ep || a.etp || a.pp;
  s.tp = a.tp ? a.tp : 1;
  s.etp = a.etp ? a.etp : 1;
  s.pp = a.pp ? a.pp : 1;
  s.ep = a.ep ? a.ep : (any ? 1 : world);  // default: pure expert parallelism over all ranks
  return s;
}

std::string fmt_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f %s", b, units[u]);
  return buf;
}

// One row per quantizer of every rank, merged on rank 0 (names are global and unique).
void print_quantizer_table(torch::nn::Module& model, dist::Communicator& world) {
  std::string rows;
  for (const QuantModuleRef& ref : find_quant_modules(model)) {
    auto* grouped = dynamic_cast<GroupedLinearImpl*>(ref.module);
    for (const auto& nq : ref.module->named_quantizers()) {
      const TensorQuantizer& q = *nq.second;
      if (!q.enabled() || q.amax_slots().empty()) continue;
      // Weight-only runs never feed activations: leave the untouched input quantizers out.
      if (nq.first.find("input") != std::string::npos && !q.is_calibrated()) continue;
      std::string shape = "-";
      if (grouped && nq.first.find("weight") != std::string::npos) {
        const auto& o = grouped->options();
        const bool shared = nq.first == "weight_quantizer";
        shape = (shared ? std::to_string(o.num_global_experts) + " x " : std::string()) + "[" +
                std::to_string(o.out_features) + ", " + std::to_string(o.in_features) + "]";
      }
      char amax[32];
      std::snprintf(amax, sizeof(amax), "%.6g", q.is_calibrated() ? q.amax_slots()[0] : -1.0f);
      rows += q.name() + "\t" + shape + "\t" + (q.is_calibrated() ? amax : "uncalibrated") + "\t" +
              format_name(q.format()) + "\n";
    }
  }
  const auto all = world.all_gather_bytes(rows);
  if (world.rank() != 0) return;
  std::set<std::string> unique;
  for (const std::string& r : all) {
    size_t start = 0;
    while (start < r.size()) {
      const size_t end = r.find('\n', start);
      unique.insert(r.substr(start, end - start));
      start = end + 1;
    }
  }
  std::printf("\n%-58s %-22s %-12s %s\n", "quantizer", "shape (per rank)", "amax", "format");
  size_t shown = 0;
  for (const std::string& row : unique) {
    if (++shown > 40) {
      std::printf("... and %zu more (every quantizer is in the exported scales)\n",
                  unique.size() - 40);
      break;
    }
    std::string cols[4];
    size_t start = 0;
    for (int c = 0; c < 4; ++c) {
      const size_t end = row.find('\t', start);
      cols[c] = row.substr(start, end == std::string::npos ? std::string::npos : end - start);
      start = end == std::string::npos ? row.size() : end + 1;
    }
    std::printf("%-58s %-22s %-12s %s\n", cols[0].c_str(), cols[1].c_str(), cols[2].c_str(),
                cols[3].c_str());
  }
}

int quantize_on_every_rank(const QuantizeArgs& a, QuantFormat format, uint64_t max_shard,
                           std::unique_ptr<dist::Communicator> world_comm, const Timer& timer);

}  // namespace

int run_quantize(const QuantizeArgs& a) {
  const QuantFormat format = format_from_name(a.format);
  const uint64_t max_shard = parse_size(a.max_shard_size, "--max-shard-size");
  std::unique_ptr<dist::Communicator> world_comm = make_tool_world(a.device == "cuda", a.timeout_s);
  const int rank = world_comm->rank();
  Timer timer;

  // Everything below runs on every rank. Steps whose failure every rank sees alike, or that are
  // agreed, end with the same message everywhere; a failure inside a transfer ends the job.
  return dist::run_or_abort_job([&]() -> int {
    try {
      return quantize_on_every_rank(a, format, max_shard, std::move(world_comm), timer);
    } catch (const AgreedError& e) {
      if (rank == 0) std::fprintf(stderr, "moequant: error: %s\n", e.what());
      return 1;
    }
  });
}

namespace {

int quantize_on_every_rank(const QuantizeArgs& a, QuantFormat format, uint64_t max_shard,
                           std::unique_ptr<dist::Communicator> world_comm, const Timer& timer) {
  dist::Communicator& world = *world_comm;
  const bool rank0 = world.rank() == 0;
  const bool chatty = rank0 && !a.quiet;
  {
    std::string model_dir = a.model;
    std::string out_dir = a.out;
    bool overwrite = a.overwrite;
    if (model_dir.empty()) {
      model_dir = builtin_model_dir(world, a.quiet);
      if (out_dir.empty()) {
        out_dir =
            std::filesystem::path(model_dir).parent_path().string() + "/quantized-" + a.format;
        overwrite = true;
      }
    }
    MQ_CHECK(!out_dir.empty(), "--out is required with --model");

    HfMoeConfig config;
    std::unique_ptr<dist::ParallelState> ps;
    agreed_step(world, [&] {
      config = read_hf_config(model_dir);
      dist::ModelDims dims;
      dims.num_layers = config.num_layers;
      dims.num_experts = config.num_experts;
      dims.expert_intermediate = config.intermediate;
      ps = std::make_unique<dist::ParallelState>(world.size(), world.rank(),
                                                 layout_from(a, world.size()), dims);
      // What would fail at export fails now, before minutes of loading: the output folder and
      // the format's shape rules (nvfp4 in % 16, int4 in % 8 and out % 8).
      if (world.rank() == 0) check_output_dir(out_dir, overwrite);
      const int64_t H = config.hidden, I = config.intermediate;
      quantized_outputs(format, I, H, DType::kBF16, false,
                        config.expert_weight_name(config.moe_layers.at(0), 0, ExpertProj::kGate));
      quantized_outputs(format, H, I, DType::kBF16, false,
                        config.expert_weight_name(config.moe_layers.at(0), 0, ExpertProj::kDown));
    });
    if (chatty)
      std::printf(
          "model %s (%s): %d layers, %zu MoE, %d experts, hidden %lld, expert "
          "intermediate %lld; layout %s; format %s\n",
          model_dir.c_str(), config.model_type.c_str(), config.num_layers, config.moe_layers.size(),
          config.num_experts, static_cast<long long>(config.hidden),
          static_cast<long long>(config.intermediate), ps->describe().c_str(), a.format.c_str());
    dist::ProcessGroups groups = dist::ProcessGroups::split_from(std::move(world_comm), *ps);
    dist::Communicator& w = groups.world();

    HfLoadOptions lo;
    lo.format = format;
    lo.per_expert_amax = a.expert_amax == "per-expert";
    lo.device = a.device;
    std::shared_ptr<HfMoeModel> model;
    agreed_step(w, [&] { model = std::make_shared<HfMoeModel>(config, *ps, lo); });

    size_t observed = 0;
    agreed_step(w, [&] { observed = model->calibrate_weights_streaming(); });
    const AmaxSyncSummary sync = sync_amax(*model, groups);
    if (chatty)
      std::printf(
          "calibrated %zu expert weights on rank 0; synchronized %zu quantizers with %zu "
          "collective(s)\n",
          observed, sync.quantizers, sync.collectives);

    std::map<int, MoeExperts> layers;
    for (int l : model->local_moe_layers()) layers.emplace(l, model->experts(l));
    ModuleExpertSource source(layers, [&](int layer, int expert, bool fc1) {
      return fc1 ? model->read_fc1_shard(layer, expert) : model->read_fc2_shard(layer, expert);
    });
    ExportOptions eo;
    eo.out_dir = out_dir;
    eo.format = format;
    eo.overwrite = overwrite;
    eo.exclude = a.exclude;
    eo.max_shard_bytes = max_shard;
    eo.device = a.device;
    Progress progress("exporting", chatty);
    eo.progress = [&](size_t done, size_t total) { progress.update(done, total); };
    const DType expert_dtype = checkpoint_dtype(at::empty({0}, model->expert_dtype()));
    const ExportSummary s =
        export_checkpoint(config, *ps, w, source, &model->checkpoint(), expert_dtype, eo);
    progress.finish();

    if (!a.no_table && !a.quiet) print_quantizer_table(*model, w);
    if (chatty) {
      for (const std::string& warning : s.warnings) std::printf("warning: %s\n", warning.c_str());
      const double secs = timer.seconds();
      uint64_t in_bytes = 0;
      for (const std::string& n : model->checkpoint().names())
        in_bytes += model->checkpoint().info(n).nbytes();
      std::printf("\nwrote %s: %zu tensors in %zu file(s), %s (source %s)\n", out_dir.c_str(),
                  s.tensors, s.files, fmt_bytes(static_cast<double>(s.bytes)).c_str(),
                  fmt_bytes(static_cast<double>(in_bytes)).c_str());
      if (s.quantized_params > 0)
        std::printf(
            "expert weights: %.3g M parameters in %s = %.2f bits per parameter "
            "(scales included)\n",
            s.quantized_params / 1e6, fmt_bytes(static_cast<double>(s.quantized_bytes)).c_str(),
            8.0 * s.quantized_bytes / s.quantized_params);
      std::printf("time %.2f s, %s/s read+written\n", secs,
                  fmt_bytes((in_bytes + s.bytes) / std::max(secs, 1e-9)).c_str());
    }
    return 0;
  }
}

}  // namespace

}  // namespace moequant::tool
