#include "moequant/export/exporter.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/common/test_pause.h"
#include "moequant/export/engine_view.h"
#include "moequant/export/export_plan.h"
#include "moequant/export/output_folder.h"
#include "moequant/export/quant_config_json.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/io/placed_file.h"
#include "moequant/parallel/error_agreement.h"
#include "rank_producer.h"
#include "unit_producer.h"

namespace moequant {

namespace {

using export_detail::RankShare;

// Producer threads of this rank: its share of the cores of its node (ranks on one host split
// them), within the CPUs it may run on.
int default_threads(parallel::Communicator& world) {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  const std::vector<std::string> hosts = world.all_gather_bytes(host);
  const int local = static_cast<int>(std::count(hosts.begin(), hosts.end(), std::string(host)));
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  int allowed = cores;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) allowed = CPU_COUNT(&set);
  return std::max(1, std::min(allowed, cores / std::max(1, local)));
}

// The format every rank's quantizers hold (ExportSource::weight_format); ranks that disagree fail
// alike, naming the formats.
QuantFormat agreed_format(parallel::Communicator& world, const ExportSource& source) {
  std::string mine;
  parallel::agree_on_error(world,
                           parallel::error_of([&] { mine = format_name(source.weight_format()); }));
  const std::vector<std::string> all = world.all_gather_bytes(mine);
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      throw AgreedError(str_cat("export: rank 0's quantizers hold format ", all[0], " but rank ", r,
                                "'s hold ", all[r], ": every rank must quantize alike"));
  return format_from_name(all[0]);
}

// What can fail before any byte moves, checked by each producer on its own units: a quantizer of
// another format than the plan's, per-channel expert amax, an uncalibrated weight quantizer under
// the error policy, a missing input amax.
void precheck_units(const ModelConfig& config, const ExportSource& source, const ExportPlan& plan,
                    const ExportOptions& options, int me) {
  for (const PlannedUnit& u : plan.units) {
    if (u.producer != me || u.format == QuantFormat::kNone) continue;
    if (u.dense) {
      const auto q = source.dense_weight_quantizer(u.layer, u.dense->group);
      MQ_CHECK(q->format() == u.format, "quantizer '", q->name(), "' holds format ",
               format_name(q->format()), " but the export writes ", format_name(u.format));
      MQ_CHECK(q->is_calibrated(), "weight quantizer '", q->name(), "' of ", u.dense->module,
               " observed no weight");
      if (plan.scheme.static_activations)
        MQ_CHECK(source.dense_input_quantizer(u.layer, u.dense->group)->is_calibrated(),
                 "the input quantizer of ", u.dense->module,
                 " saw no tokens: its input_scale would be missing");
      continue;
    }
    const auto q = source.weight_quantizer(u.layer, u.expert, u.fc1);
    MQ_CHECK(q->format() == u.format, "quantizer '", q->name(), "' holds format ",
             format_name(q->format()), " but the export writes ", format_name(u.format), " ('",
             u.weights.front(), "')");
    MQ_CHECK(q->axis() == AmaxAxis::kPerTensor, "quantizer '", q->name(),
             "': per-channel expert amax is not supported by the exporter yet");
    if (options.uncalibrated_weights == UncalibratedWeights::kError)
      resolve_weight_amax(*q,
                          config.expert_module_name(u.layer, u.expert,
                                                    u.fc1 ? ExpertProj::kGate : ExpertProj::kDown),
                          "its weight", UncalibratedWeights::kError, nullptr, nullptr);
    if (plan.scheme.static_activations) {
      bool fell_back = false;
      export_detail::unit_input_amax(source, u, &fell_back);
    }
  }
}

// The configs that make engines read the files right; checked against the plan with the
// engines' own rules before anything is written (a checkpoint that loads but is misread is
// worse than an error).
struct ConfigFiles {
  nlohmann::json config;
  std::optional<nlohmann::json> hf_quant;
};

ConfigFiles config_files(const ModelConfig& config, const ExportPlan& plan) {
  std::vector<std::string> quantized;
  for (const PlannedModule& m : plan.modules)
    if (m.quantized) quantized.push_back(m.name);
  const std::vector<std::string> unquantized = plan.unquantized_modules();
  ConfigFiles files{exported_config(config, plan.scheme, unquantized, quantized),
                    hf_quant_config(plan.scheme, unquantized)};
  std::vector<std::pair<std::string, bool>> modules;
  for (const PlannedModule& m : plan.modules) modules.push_back({m.name, m.quantized});
  std::vector<std::string> problems =
      engine_mismatches(engine_view_of(files.config, "config.json"), modules);
  if (files.hf_quant) {
    const auto more = engine_mismatches(
        engine_view_of_hf_quant_config(*files.hf_quant, "hf_quant_config.json"), modules);
    problems.insert(problems.end(), more.begin(), more.end());
  }
  MQ_CHECK(problems.empty(),
           "internal: the quantization config would be misread: ", problems.front());
  return files;
}

// Rank 0 makes the partial folder, every output file at its final size with its header, and a
// marker; every rank must then see the marker's token (one shared filesystem, docs/design.md).
// `note` (rank 0): what an earlier run left and this one cleaned up.
std::string prepare_files(parallel::Communicator& world, const ExportPlan& plan,
                          const ExportOptions& options, std::string& note) {
  const std::string dir = partial_dir_for(options.out_dir);
  const std::string marker = dir + "/.moequant-ranks-share-this-folder";
  std::string token;
  std::string error = parallel::error_of([&] {
    if (world.rank() != 0) return;
    note = prepare_partial_dir(options.out_dir, options.overwrite);
    for (const PlannedFile& f : plan.files)
      io::PlacedFile::create(dir + "/" + f.name, f.header, f.size());
    token = std::to_string(std::random_device{}()) + "-" + std::to_string(::getpid());
    write_text_file(marker, token);
  });
  parallel::agree_on_error(world, error);
  token = world.all_gather_bytes(token)[0];
  error = parallel::error_of([&] {
    std::string seen;
    if (FILE* f = std::fopen(marker.c_str(), "r")) {
      char buf[128] = {0};
      seen.assign(buf, std::fread(buf, 1, sizeof(buf) - 1, f));
      std::fclose(f);
    }
    MQ_CHECK(seen == token, "does not see the output folder '", dir,
             "' that rank 0 created (marker ", seen.empty() ? "missing" : "differs",
             "): every rank must share one filesystem for the output (Lustre, GPFS, NFS, ...)");
  });
  parallel::agree_on_error(world, error);
  pause_for_test("export-files-created");
  return dir;
}

// Every planned tensor written exactly once, across all ranks (a collective check).
std::string check_all_written(parallel::Communicator& world, const ExportPlan& plan,
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
  return str_cat("export incomplete: ", missing.size(), " missing tensor(s) [", join(missing),
                 "], ", duplicated.size(), " written twice [", join(duplicated), "]");
}

std::vector<ExportRankStats> gather_stats(parallel::Communicator& world,
                                          const ExportRankStats& mine) {
  std::string bytes(sizeof(ExportRankStats), '\0');
  std::memcpy(bytes.data(), &mine, sizeof(mine));
  std::vector<ExportRankStats> out;
  for (const std::string& b : world.all_gather_bytes(bytes)) {
    ExportRankStats s;
    std::memcpy(&s, b.data(), sizeof(s));
    out.push_back(s);
  }
  return out;
}

std::vector<std::string> gather_sorted(parallel::Communicator& world,
                                       const std::vector<std::string>& mine) {
  std::set<std::string> all;
  for (const std::string& r : world.all_gather_bytes(join(mine, "\n")))
    for (const std::string& line : split_lines(r)) all.insert(line);
  return {all.begin(), all.end()};
}

void fill_sizes(const ModelConfig& config, const ExportPlan& plan, ExportSummary& s) {
  s.scheme = plan.scheme;
  s.tensors = plan.tensors.size();
  s.files = plan.files.size();
  s.bytes = plan.total_bytes;
  for (const PlannedUnit& u : plan.units) {
    if (u.format == QuantFormat::kNone) continue;
    // A dense linear's weight, or an expert's gate, up, down: H x I each.
    s.quantized_params += u.dense ? static_cast<uint64_t>(u.dense->shape[0] * u.dense->shape[1])
                                  : u.weights.size() * static_cast<uint64_t>(config.hidden) *
                                        static_cast<uint64_t>(config.intermediate);
    for (size_t i : u.tensors) s.quantized_bytes += plan.tensors[i].nbytes;
  }
}

}  // namespace

ExportSummary export_checkpoint(const ModelConfig& config, const parallel::ParallelState& ps,
                                parallel::Communicator& world, const ExportSource& source,
                                const ExportOptions& options) {
  MQ_CHECK(world.size() == ps.world_size() && world.rank() == ps.rank(),
           "export: communicator (rank ", world.rank(), " of ", world.size(),
           ") does not match the parallel layout (rank ", ps.rank(), " of ", ps.world_size(), ")");
  const int threads = options.threads > 0 ? options.threads : default_threads(world);
  const QuantFormat format = agreed_format(world, source);

  // 1. The plan, the configs checked against it, and what each producer can check up front:
  //    identical on every rank, agreed before any byte moves.
  ExportPlan plan;
  ConfigFiles configs;
  parallel::agreed_step(world, [&] {
    PlanOptions po;
    po.scheme = choose_scheme(format, options.activations_calibrated);
    po.scheme.kv_cache_fp8 = options.kv_cache_fp8;
    po.quantize_dense = options.quantize_dense;
    MQ_CHECK(!options.quantize_dense || source.has_dense_quantizers(),
             "--quantize all-linear: this export source holds no quantizers of the dense linears");
    if (options.kv_cache_fp8) {
      MQ_CHECK(source.has_kv_cache_quantizers(),
               "--kv-cache fp8: this export source holds no KV-cache quantizers");
      MQ_CHECK(po.scheme.is_modelopt() && po.scheme.static_activations,
               "--kv-cache fp8 is declared by ModelOpt's kv_cache_quant_algo: it needs --format "
               "fp8 or nvfp4 with calibration data (this export is ",
               po.scheme.names().description, ")");
    }
    po.exclude = options.exclude;
    po.allow_partial_blocks = options.allow_partial_blocks;
    po.max_shard_bytes = options.max_shard_bytes;
    po.expert_dtype = source.expert_dtype();
    plan = make_export_plan(config, ps, source.passthrough_tensors(), po);
    configs = config_files(config, plan);
    precheck_units(config, source, plan, options, world.rank());
  });

  // 2. Every file created at its final size; every rank sees them.
  std::string leftovers;
  const std::string dir = prepare_files(world, plan, options, leftovers);

  // 3. Every rank writes its own tensors into place. A failure inside a transfer ends the job
  //    (parallel::abort_job in the tool); any other one is agreed below.
  const RankShare share =
      export_detail::produce_rank_share(config, ps, world, source, options, plan, dir, threads);
  std::string error = share.error;
  if (error.empty())
    error = check_all_written(world, plan, share.written);
  else
    check_all_written(world, plan, share.written);  // keep the collective in step
  ExportSummary summary;
  summary.ranks = gather_stats(world, share.stats);
  const std::vector<std::string> fallbacks = gather_sorted(world, share.fallbacks);
  if (!error.empty() && world.rank() == 0) discard_partial_dir(options.out_dir);
  parallel::agree_on_error(world, error);

  // 4. Rank 0 writes the index and the configs last and publishes the folder.
  std::vector<std::string> copied;
  parallel::agreed_step(world, [&] {
    if (world.rank() != 0) return;
    try {
      std::map<std::string, std::string> weight_map;
      for (const PlannedTensor& t : plan.tensors) weight_map[t.name] = plan.files[t.file].name;
      std::remove((dir + "/.moequant-ranks-share-this-folder").c_str());
      io::write_index(dir + "/model.safetensors.index.json", plan.total_bytes, weight_map);
      for (const std::string& file : source.side_files()) {  // tokenizer, generation config
        std::error_code ec;
        const std::filesystem::path from(file);
        std::filesystem::copy_file(from, std::filesystem::path(dir) / from.filename(), ec);
        MQ_CHECK(!ec, "cannot copy '", file, "' into the output folder: ", ec.message());
        copied.push_back(from.filename().string());
      }
      write_text_file(dir + "/config.json", configs.config.dump(2) + "\n");
      if (configs.hf_quant)
        write_text_file(dir + "/hf_quant_config.json", configs.hf_quant->dump(2) + "\n");
      publish_partial_dir(options.out_dir, options.overwrite);
    } catch (...) {
      discard_partial_dir(options.out_dir);
      throw;
    }
  });

  fill_sizes(config, plan, summary);
  summary.notes = plan.notes;
  summary.side_files = split_lines(world.all_gather_bytes(join(copied, "\n"))[0]);
  leftovers = world.all_gather_bytes(leftovers)[0];
  if (!leftovers.empty()) summary.warnings.push_back(leftovers);
  int64_t e2m1_blocks = 0, requantized = 0;
  for (const ExportRankStats& s : summary.ranks) {
    e2m1_blocks += s.e2m1_blocks;
    requantized += s.e2m1_requantized_blocks;
  }
  if (e2m1_blocks > 0)
    summary.notes.push_back(str_cat(
        "nvfp4 from the MXFP4 experts: ", e2m1_blocks - requantized, " of ", e2m1_blocks,
        " 16-blocks keep their E2M1 codes exactly (weight_scale_2 a power of two, block scale "
        "2^k); ",
        requantized,
        " re-quantized by the ordinary rule (a block scale e4m3 cannot hold, or values on no "
        "single E2M1 grid)"));
  if (!fallbacks.empty())
    summary.warnings.push_back(
        str_cat(fallbacks.size(),
                " quantizer(s) had no amax and fell back (weights: their own amax, when asked for; "
                "inputs of experts that saw no token: the layer's shared input amax): ",
                join(fallbacks)));
  return summary;
}

}  // namespace moequant
