#include "moequant/pipeline/quantize_checkpoint.h"

#include <cmath>

#include <chrono>
#include <optional>
#include <set>

#include "moequant/calib/calibrate.h"
#include "moequant/calib/calibration_data.h"
#include "moequant/calib/quantizer_sync.h"
#include "moequant/calib/sequence_limits.h"
#include "moequant/common/error.h"
#include "moequant/common/interrupt_cleanup.h"
#include "moequant/common/stopwatch.h"
#include "moequant/common/strings.h"
#include "moequant/common/test_pause.h"
#include "moequant/export/exclude_patterns.h"
#include "moequant/export/export_plan.h"
#include "moequant/export/output_folder.h"
#include "moequant/forward/forward_support.h"
#include "moequant/hf/hf_moe_model.h"
#include "moequant/io/output_lock.h"
#include "moequant/model/decoder_config.h"
#include "moequant/parallel/error_agreement.h"
#include "moequant/parallel/process_groups.h"

namespace moequant {

namespace {

using Clock = SteadyClock;

// The calibration sequences asked for, as check_sequence_limits sizes them (`samples` 0: the
// lines of a file, not counted yet).
int64_t calib_seq_len(const QuantizeOptions& o, const ModelConfig& config) {
  return o.calib_seq_len > 0 ? o.calib_seq_len : default_seq_len(config);
}

SequenceRequest sequence_request(const QuantizeOptions& o, const ModelConfig& config,
                                 int world_size, int64_t samples) {
  SequenceRequest r;
  r.samples = samples;
  r.seq_len = calib_seq_len(o, config);
  r.batch = o.calib_batch;
  r.ranks = std::max(1, world_size / layout_of(o, world_size).pp);  // the ranks of a stage
  return r;
}

// What fails at export fails now, before minutes of loading: the output folder (rank 0:
// producible, and locked for this run) and the format's shape rules (nvfp4 in % 16, int4
// in % 8 and out % 8).
void check_early(const QuantizeOptions& o, const ModelConfig& config, int rank, int world_size,
                 std::optional<io::OutputLock>& lock) {
  if (!o.calib_data.empty()) {  // before the data is read or made: sizes that cannot fit
    check_forward_supports(config, decoder_config(config), "calibration with data");
    const int64_t samples =
        o.calib_data == "random" ? (o.calib_samples > 0 ? o.calib_samples : 16) : o.calib_samples;
    check_sequence_limits(config, sequence_request(o, config, world_size, samples));
  }
  if (rank == 0) {
    check_output_dir(o.out_dir, o.overwrite);
    lock.emplace(io::OutputLock::acquire(o.out_dir));  // held until the run returns
    pause_for_test("output-locked");
  }
  check_exclude_patterns(config, o.exclude, o.quantize_dense);
  if (o.gptq.enabled) {
    MQ_CHECK(!o.calib_data.empty(),
             "--algorithm gptq needs --calib-data: its Hessians are built from the rows the "
             "calibration forward routes to each expert");
    MQ_CHECK(o.format == QuantFormat::kINT4 || o.format == QuantFormat::kNVFP4,
             "--algorithm gptq is for --format int4 or nvfp4, not ", format_name(o.format),
             " (8-bit codes leave GPTQ nothing to gain over rounding to nearest)");
    MQ_CHECK(layout_of(o, world_size).etp == 1, "--algorithm gptq with --etp ",
             layout_of(o, world_size).etp,
             " is not supported: GPTQ solves each expert's rows against the Hessian of its whole "
             "input, so an expert must stay on one rank (use --ep instead)");
    MQ_CHECK(std::isfinite(o.gptq.damp) && o.gptq.damp > 0 && o.gptq.damp <= 1, "--gptq-damp ",
             o.gptq.damp, " is not in (0, 1]");
    MQ_CHECK(o.gptq.min_tokens >= 1, "--gptq-min-tokens ", o.gptq.min_tokens,
             " must be at least 1");
  }
  MQ_CHECK(!o.calib_all_experts || !o.calib_data.empty(),
           "--calib-all-experts needs --calib-data: it widens what the calibration forward "
           "shows each expert");
  if (o.kv_cache_fp8) {
    MQ_CHECK(!o.calib_data.empty(),
             "--kv-cache fp8 needs --calib-data: its scales are the amax of the keys and values "
             "the calibration forward computes");
    MQ_CHECK(format_descriptor(o.format).has_static_activations(),
             "--kv-cache fp8 is declared by ModelOpt's kv_cache_quant_algo: it needs --format fp8 "
             "or nvfp4 (not ",
             format_name(o.format), ")");
    MQ_CHECK(decoder_config(config).attention == AttentionKind::kGqa, config.model_type,
             ": --kv-cache fp8 is not written for multi-head latent attention (the engines cache "
             "its compressed latent; how they apply k_scale / v_scale to it is not written down "
             "in docs/formats.md yet)");
  }
  const int64_t H = config.hidden, I = config.intermediate;
  const int layer = config.moe_layers.at(0);
  check_engine_shape_rules(config, o.format, o.allow_partial_blocks);
  const FormatDescriptor& f = format_descriptor(o.format);
  f.stored_tensors(I, H, DType::kBF16, config.expert_weight_name(layer, 0, ExpertProj::kGate));
  f.stored_tensors(H, I, DType::kBF16, config.expert_weight_name(layer, 0, ExpertProj::kDown));
}

CalibrationData calibration_data(const QuantizeOptions& o, const ModelConfig& config,
                                 int world_size) {
  CalibrationData data =
      load_calibration_data(o.calib_data, o.model_dir, o.calib_samples, calib_seq_len(o, config),
                            decoder_config(config).vocab, o.calib_seed);
  check_sequence_limits(
      config, sequence_request(o, config, world_size, static_cast<int64_t>(data.samples.size())));
  return data;
}

ExportOptions export_options(const QuantizeOptions& o) {
  ExportOptions e;
  e.out_dir = o.out_dir;
  e.overwrite = o.overwrite;
  e.durable = o.durable;
  e.exclude = o.exclude;
  e.quantize_dense = o.quantize_dense;
  e.kv_cache_fp8 = o.kv_cache_fp8;
  e.allow_partial_blocks = o.allow_partial_blocks;
  e.max_shard_bytes = o.max_shard_bytes;
  e.device = o.device;
  e.threads = o.threads;
  e.activations_calibrated = !o.calib_data.empty();
  if (o.progress) e.progress = [p = o.progress](uint64_t d, uint64_t t) { p("export", d, t); };
  return e;
}

// Every quantizer of every rank, merged on rank 0 (names are global and unique).
std::vector<QuantizerStat> gather_quantizers(HfMoeModel& model, parallel::Communicator& world) {
  std::string rows;
  for (const QuantModuleRef& ref : find_quant_modules(model)) {
    auto* grouped = dynamic_cast<GroupedLinearImpl*>(ref.module);
    for (const auto& [local_name, q] : ref.module->named_quantizers()) {
      if (!q->enabled() || q->amax_slots().empty()) continue;
      const bool input = local_name.find("input") != std::string::npos;
      if (input && !q->is_calibrated()) continue;  // weight-only runs feed no activations
      std::string shape = "-";
      if (grouped && !input) {
        const auto& go = grouped->options();
        shape = (local_name == "weight_quantizer" ? std::to_string(go.num_global_experts) + " x "
                                                  : std::string()) +
                shape_string(std::vector<int64_t>{go.out_features, go.in_features});
      }
      rows += str_cat(q->name(), '\t', shape, '\t', q->is_calibrated() ? q->amax_slots()[0] : -1.0f,
                      '\t', format_name(q->format()), '\n');
    }
  }
  std::set<std::string> unique;
  for (const std::string& r : world.all_gather_bytes(rows))
    for (const std::string& line : split_lines(r)) unique.insert(line);
  std::vector<QuantizerStat> out;
  if (world.rank() != 0) return out;
  for (const std::string& line : unique) {
    std::vector<std::string> cols;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1)
      cols.push_back(line.substr(start, tab - start));
    cols.push_back(line.substr(start));
    if (cols.size() != 4) continue;
    out.push_back({cols[0], cols[1], std::stof(cols[2]), format_from_name(cols[3])});
  }
  return out;
}

}  // namespace

parallel::ParallelSizes layout_of(const QuantizeOptions& o, int world_size) {
  parallel::ParallelSizes s;
  const bool any = o.tp || o.ep || o.etp || o.pp;
  s.tp = o.tp ? o.tp : 1;
  s.etp = o.etp ? o.etp : 1;
  s.pp = o.pp ? o.pp : 1;
  s.ep = o.ep ? o.ep : (any ? 1 : world_size);  // default: pure expert parallelism
  return s;
}

QuantizeReport quantize_checkpoint(const QuantizeOptions& o,
                                   std::unique_ptr<parallel::Communicator> world_comm) {
  const Clock::time_point start = Clock::now();
  QuantizeReport report;
  parallel::Communicator& world0 = *world_comm;

  // Load: config.json, the layout, this rank's shards (headers only). Agreed step by step, so a
  // bad input fails every rank alike with one message.
  std::unique_ptr<parallel::ParallelState> ps;
  std::optional<io::OutputLock> lock;  // rank 0: this run owns the output folder
  set_interrupted_activity(str_cat("quantizing '", o.model_dir, "' into '", o.out_dir, "'"));
  parallel::agreed_step(world0, [&] {
    MQ_CHECK(!o.model_dir.empty(), "no model folder given");
    MQ_CHECK(!o.out_dir.empty(), "no output folder given");
    // First of all: an output that would delete the source is refused before anything else.
    if (world0.rank() == 0) check_output_apart_from_source(o.out_dir, o.model_dir);
    report.config = read_model_config(o.model_dir);
    check_early(o, report.config, world0.rank(), world0.size(), lock);
    parallel::ModelDims dims{report.config.num_layers, report.config.num_experts,
                             report.config.intermediate};
    ps = std::make_unique<parallel::ParallelState>(world0.size(), world0.rank(),
                                                   layout_of(o, world0.size()), dims);
  });
  report.layout = ps->describe();
  parallel::ProcessGroups groups = parallel::ProcessGroups::split_from(std::move(world_comm), *ps);
  parallel::Communicator& world = groups.world();
  std::shared_ptr<HfMoeModel> model;
  parallel::agreed_step(world, [&] {
    HfLoadOptions lo;
    lo.format = o.format;
    lo.per_expert_amax = o.per_expert_amax;
    lo.quantize_dense = o.quantize_dense;
    lo.kv_cache = o.kv_cache_fp8;
    model = std::make_shared<HfMoeModel>(report.config, *ps, lo);
  });
  report.bytes_read = model->checkpoint_bytes();
  report.load_s = seconds_since(start);
  pause_for_test("checkpoint-opened");  // the shards are mapped, no weight read yet

  // Calibrate: every expert weight this rank holds, one batched amax pass per layer; with data,
  // the forward over the calibration tokens, which observes the weights in the same pass.
  Clock::time_point t0 = Clock::now();
  if (o.calib_data.empty()) {
    parallel::agreed_step(world, [&] {
      const std::vector<int> layers = model->stage_layers();
      for (size_t i = 0; i < layers.size(); ++i) {
        if (report.config.is_moe_layer(layers[i]))
          report.weights_observed += model->calibrate_layer_weights(layers[i]);
        report.weights_observed += model->calibrate_dense_weights(layers[i]);
        if (o.progress) o.progress("calibrate", i + 1, layers.size());
      }
    });
  } else {
    CalibrationData data;
    parallel::agreed_step(world, [&] { data = calibration_data(o, report.config, world.size()); });
    DataCalibrationOptions dco;
    dco.batch = o.calib_batch;
    dco.device = o.device;
    dco.all_experts = o.calib_all_experts;
    dco.gptq = o.gptq;
    if (o.progress) dco.progress = [&](size_t d, size_t t) { o.progress("calibrate", d, t); };
    // Collective inside (the expert dispatch): a rank that fails there ends the job.
    report.calibration = calibrate_with_data(*model, groups, data, dco);
    report.weights_observed = report.calibration.weights_observed;
    report.calibrated_with_data = true;
  }
  report.calibrate_s = seconds_since(t0);

  // Sync: one collective per group, whatever the number of quantizers.
  t0 = Clock::now();
  report.sync = sync_quantizers(*model, groups);
  report.sync_s = seconds_since(t0);

  // Export: every rank writes its own tensors into place.
  t0 = Clock::now();
  report.exported = export_checkpoint(report.config, *ps, world, *model, export_options(o));
  report.export_s = seconds_since(t0);

  report.quantizers = gather_quantizers(*model, world);
  report.total_s = seconds_since(start);
  return report;
}

}  // namespace moequant
