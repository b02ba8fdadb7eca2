// `moequant quantize`: the command line over quantize_checkpoint() (the library pipeline). It
// parses flags, supplies the built-in model when none is given, and prints; the work is the
// library's.
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include "commands.h"
#include "flag_checks.h"
#include "moequant/common/error.h"
#include "moequant/common/interrupt_cleanup.h"
#include "moequant/common/strings.h"
#include "moequant/export/output_folder.h"
#include "moequant/parallel/error_agreement.h"
#include "moequant/parallel/job_abort.h"
#include "moequant/pipeline/quantize_checkpoint.h"
#include "progress.h"
#include "synthetic_model.h"
#include "world.h"

namespace moequant::tool {

CLI::App* add_quantize_command(CLI::App& app, QuantizeArgs& a) {
  CLI::App* c = app.add_subcommand(
      "quantize",
      "Quantize a Hugging Face MoE checkpoint (its routed experts; with --quantize all-linear "
      "every linear ModelOpt quantizes) and write a checkpoint that serving engines load. With "
      "no --model it runs on a small built-in model.");
  c->add_option("--model", a.model, "Hugging Face model folder (config.json + safetensors)");
  c->add_option("--format", a.format, "Output format")
      ->check(CLI::IsMember({"none", "fp8", "nvfp4", "fp8_block", "int4"}))
      ->capture_default_str();
  c->add_option("--out", a.out, "Output folder (must not exist unless --overwrite)");
  c->add_option("--tp", a.tp, "Tensor-parallel size (dense layers)")->check(positive_number());
  c->add_option("--ep", a.ep, "Expert-parallel size (default: all ranks when no size is given)")
      ->check(positive_number());
  c->add_option("--etp", a.etp, "Expert-tensor-parallel size")->check(positive_number());
  c->add_option("--pp", a.pp, "Pipeline-parallel size")->check(positive_number());
  c->add_option("--quantize", a.quantize,
                "experts: the routed experts only; all-linear: also attention (q/k/v/o, MLA's "
                "projections), shared experts and dense MLPs, as ModelOpt's default configs do "
                "(never the router, its gates, embeddings, norms or lm_head)")
      ->check(CLI::IsMember({"experts", "all-linear"}))
      ->capture_default_str();
  c->add_option("--kv-cache", a.kv_cache,
                "fp8: write k_scale / v_scale of every attention layer (amax of the keys after "
                "RoPE and of the values, / 448) and declare an FP8 KV cache; needs --calib-data "
                "and --format fp8 or nvfp4")
      ->check(CLI::IsMember({"none", "fp8"}))
      ->capture_default_str();
  c->add_option("--exclude", a.exclude,
                "Leave matching linears unquantized (glob, or re:REGEX on names like "
                "model.layers.3.mlp.experts.5.gate_proj); all experts of a layer or none (int4: "
                "any); one of q/k/v or gate/up excludes its fused group; repeatable");
  c->add_flag("--overwrite", a.overwrite, "Replace an existing output folder");
  c->add_flag("--allow-partial-blocks", a.allow_partial_blocks,
              "fp8_block: write experts whose intermediate size is not a multiple of 128 "
              "(transformers and TensorRT-LLM load them; vLLM's and SGLang's fused MoE do not)");
  c->add_flag("--fsync", a.fsync,
              "fsync every output file before publishing the folder (survives a power loss; a "
              "killed job never leaves a complete-looking folder either way)");
  c->add_option("--expert-amax", a.expert_amax,
                "shared: one amax per grouped linear (Transformer Engine's way, reduced over ETP "
                "and EP); per-expert: one per expert (reduced over ETP)")
      ->check(CLI::IsMember({"shared", "per-expert"}))
      ->capture_default_str();
  c->add_option("--device", a.device, "Where weights are quantized: cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  c->add_option("--max-shard-size", a.max_shard_size, "Largest output shard file (e.g. 2GB, 200MB)")
      ->capture_default_str();
  c->add_option("--threads", a.threads,
                "Producer threads per rank (default: the rank's share of its node's cores)")
      ->check(positive_number());
  c->add_option("--calib-data", a.calib_data,
                "Calibration data run through the model's forward so that every expert's input "
                "is calibrated (static FP8 / NVFP4 activation scales): a .jsonl of "
                "{\"input_ids\": [...]} lines; text (.txt samples separated by blank lines, or "
                "a .jsonl of {\"text\": ...} lines) tokenized with the model folder's "
                "tokenizer.json and packed into sequences; or 'random' (seeded random tokens). "
                "Without it only weights are calibrated");
  c->add_option("--calib-samples", a.calib_samples,
                "Calibration sequences (default: every line of the file; random: 16)")
      ->check(positive_number());
  c->add_option("--calib-seq-len", a.calib_seq_len,
                "Tokens per calibration sequence (default: 512, or the model's "
                "max_position_embeddings when smaller; at most that)")
      ->check(positive_number());
  c->add_flag("--calib-all-experts", a.calib_all_experts,
              "Every routed expert also observes the inputs of all tokens of its layer (as "
              "llm-compressor's moe_calibrate_all_experts), so none is left without an input "
              "scale; the layer output still uses the real routing. Costs about E / top-k times "
              "the expert GEMMs of calibration (Qwen3-30B: 128 / 8 = 16x), distributed over the "
              "EP ranks");
  c->add_option("--algorithm", a.algorithm,
                "max: round every weight to its nearest code (amax calibration); gptq: GPTQ "
                "(Frantar et al.) for the routed experts of --format int4 or nvfp4, with "
                "--calib-data: Hessians from the routed tokens, solved for all experts of a layer "
                "at once, the next layer computed from the quantized experts")
      ->check(CLI::IsMember({"max", "gptq"}))
      ->capture_default_str();
  c->add_option("--gptq-damp", a.gptq_damp,
                "GPTQ dampening: this fraction of the mean of diag(H) is added to H's diagonal")
      ->capture_default_str();
  c->add_option("--gptq-min-tokens", a.gptq_min_tokens,
                "Experts reached by fewer calibration rows are rounded to nearest instead (listed "
                "in a warning); --calib-all-experts gives every expert all rows")
      ->capture_default_str();
  c->add_option("--calib-batch", a.calib_batch, "Sequences per forward batch on a rank")
      ->check(number_in(1, 1 << 20))
      ->capture_default_str();
  c->add_option("--seed", a.calib_seed, "Seed of --calib-data random")->capture_default_str();
  c->add_option("--timeout", a.timeout_s,
                "Seconds before a collective with a dead or stuck peer fails (default: "
                "$MOEQUANT_COLLECTIVE_TIMEOUT_S or 600)")
      ->check(positive_number());
  c->add_option("--report-json", a.report_json,
                "Also write the run's report as JSON (stage times, every rank's producer time per "
                "stage and peak RSS): what bench/bench_export.sh reads");
  c->add_flag("--quiet,-q", a.quiet, "Print only errors");
  c->add_flag("--no-table", a.no_table, "Skip the per-quantizer statistics table");
  return c;
}

uint64_t parse_size(const std::string& text, const std::string& flag, uint64_t min_bytes,
                    uint64_t max_bytes) {
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
  MQ_CHECK(it != units.end(), flag, ": cannot read size '", text,
           "' (expected e.g. 5GB, 200MB, 1000000)");
  // In double until checked: "inf", "1e30GB" or "0.5" must not wrap or round to 0.
  const double bytes = value * it->second;
  MQ_CHECK(std::isfinite(bytes) && bytes >= static_cast<double>(min_bytes) &&
               bytes <= static_cast<double>(max_bytes),
           flag, " ", text, " is out of range: from ", min_bytes, " to ", max_bytes, " bytes");
  return static_cast<uint64_t>(bytes);
}

namespace {

std::string fmt_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f %s", b, units[u]);
  return buf;
}

// The temporary folder of the built-in model (rank 0): removed when the run ends, or when it is
// interrupted. With no --out the demonstration's output lives in it too.
struct BuiltinFolder {
  std::string root;
  std::unique_ptr<RemoveOnInterrupt> on_interrupt;
  ~BuiltinFolder() {
    std::error_code ec;
    if (!root.empty()) std::filesystem::remove_all(root, ec);
  }
};

// Rank 0 makes the built-in model in a fresh temporary folder; every rank learns its path.
std::string builtin_model_dir(parallel::Communicator& world, bool quiet, BuiltinFolder& folder) {
  std::string dir;
  parallel::agreed_step(world, [&] {
    if (world.rank() != 0) return;
    char tmpl[] = "/tmp/moequant-builtin-XXXXXX";
    MQ_CHECK(::mkdtemp(tmpl) != nullptr, "cannot create a temporary folder in /tmp");
    folder.root = tmpl;
    folder.on_interrupt =
        std::make_unique<RemoveOnInterrupt>(folder.root, "the built-in model's temporary folder");
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
          "No --model given: using a built-in Qwen3-MoE-shaped model (4 layers, 16 experts, "
          "hidden 256, expert intermediate 128) written to %s (removed at exit)\n",
          dir.c_str());
  });
  return world.all_gather_bytes(dir)[0];
}

void print_quantizer_table(const std::vector<QuantizerStat>& rows) {
  std::printf("\n%-58s %-22s %-12s %s\n", "quantizer", "shape (per rank)", "amax", "format");
  size_t shown = 0;
  for (const QuantizerStat& q : rows) {
    if (++shown > 40) {
      std::printf("... and %zu more (every quantizer is in the exported scales)\n",
                  rows.size() - 40);
      break;
    }
    char amax[32];
    std::snprintf(amax, sizeof(amax), "%.6g", q.amax);
    std::printf("%-58s %-22s %-12s %s\n", q.name.c_str(), q.shape.c_str(),
                q.amax >= 0 ? amax : "uncalibrated", format_name(q.format));
  }
}

// --report-json is written after the output is published: whatever can be known about it is
// checked before any work, so that a typo does not cost the run.
void check_report_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p = fs::absolute(path, ec);
  MQ_CHECK(!fs::is_directory(p, ec), "--report-json '", path, "' is a folder");
  const fs::path parent = p.parent_path();
  MQ_CHECK(fs::is_directory(parent, ec), "--report-json '", path, "': folder '", parent.string(),
           "' does not exist");
  MQ_CHECK(::access(parent.c_str(), W_OK) == 0, "--report-json '", path, "': folder '",
           parent.string(), "' is not writable");
}

void write_report_json(const std::string& path, const QuantizeReport& r) {
  nlohmann::json ranks = nlohmann::json::array();
  for (const ExportRankStats& st : r.exported.ranks)
    ranks.push_back({{"rank", st.rank},
                     {"threads", st.threads},
                     {"bytes_written", st.bytes_written},
                     {"read_s", st.read_s},
                     {"quantize_s", st.quantize_s},
                     {"write_s", st.write_s},
                     {"wait_s", st.wait_s},
                     {"sync_s", st.sync_s},
                     {"peak_rss_bytes", st.peak_rss_bytes},
                     {"e2m1_blocks", st.e2m1_blocks},
                     {"e2m1_requantized_blocks", st.e2m1_requantized_blocks}});
  const nlohmann::json j = {
      {"model_type", r.config.model_type},
      {"layout", r.layout},
      {"scheme", r.exported.scheme.names().description},
      {"bytes_read", r.bytes_read},
      {"bytes_written", r.exported.bytes},
      {"files", r.exported.files},
      {"calibration_tokens", r.calibrated_with_data ? r.calibration.tokens : 0},
      {"experts_without_tokens", r.calibration.experts_without_tokens},
      {"seconds",
       {{"total", r.total_s},
        {"load", r.load_s},
        {"calibrate", r.calibrate_s},
        {"sync", r.sync_s},
        {"export", r.export_s},
        {"calibration_read", r.calibration.read_s},
        {"calibration_read_wait", r.calibration.read_wait_s},
        {"calibration_forward", r.calibration.forward_s},
        {"gptq", r.calibration.gptq_s}}},
      {"gptq_experts_solved", r.calibration.gptq_solved},
      {"gptq_experts_too_few_tokens", r.calibration.gptq_too_few_tokens.size()},
      {"ranks", ranks}};
  write_text_file(path, j.dump(2) + "\n");
}

void print_summary(const QuantizeReport& r, const QuantizeOptions& o) {
  const ExportSummary& s = r.exported;
  for (const std::string& warning : s.warnings) std::printf("warning: %s\n", warning.c_str());
  for (const std::string& note : s.notes) std::printf("note: %s\n", note.c_str());
  if (!s.side_files.empty())
    std::printf("copied from the model folder: %s\n", join(s.side_files).c_str());
  std::printf("\nwrote %s: %s, %zu tensors in %zu file(s), %s (source %s)\n", o.out_dir.c_str(),
              s.scheme.names().description.c_str(), s.tensors, s.files,
              fmt_bytes(static_cast<double>(s.bytes)).c_str(),
              fmt_bytes(static_cast<double>(r.bytes_read)).c_str());
  if (s.scheme.kv_cache_fp8)
    std::printf("KV cache: FP8, k_scale / v_scale for each of the %d attention layers\n",
                r.config.num_layers);
  if (s.quantized_params > 0)
    std::printf(
        "quantized weights: %.3g M parameters in %s = %.2f bits per parameter (scales "
        "included)\n",
        s.quantized_params / 1e6, fmt_bytes(static_cast<double>(s.quantized_bytes)).c_str(),
        8.0 * s.quantized_bytes / s.quantized_params);
  uint64_t peak = 0;
  for (const ExportRankStats& st : s.ranks) peak = std::max(peak, st.peak_rss_bytes);
  std::printf(
      "time %.2f s (load %.2f, calibrate %.2f, sync %.3f, export %.2f), %s/s read+written, "
      "peak RSS %s per rank (max of %zu)\n",
      r.total_s, r.load_s, r.calibrate_s, r.sync_s, r.export_s,
      fmt_bytes((r.bytes_read + s.bytes) / std::max(r.total_s, 1e-9)).c_str(),
      fmt_bytes(static_cast<double>(peak)).c_str(), s.ranks.size());
}

}  // namespace

int run_quantize(const QuantizeArgs& a) {
  QuantizeOptions o;
  o.model_dir = a.model;
  o.out_dir = a.out;
  o.overwrite = a.overwrite;
  o.durable = a.fsync;
  o.format = format_from_name(a.format);
  o.tp = a.tp, o.ep = a.ep, o.etp = a.etp, o.pp = a.pp;
  o.per_expert_amax = a.expert_amax == "per-expert";
  o.exclude = a.exclude;
  o.quantize_dense = a.quantize == "all-linear";
  o.kv_cache_fp8 = a.kv_cache == "fp8";
  o.calib_all_experts = a.calib_all_experts;
  o.gptq.enabled = a.algorithm == "gptq";
  o.gptq.damp = a.gptq_damp;
  o.gptq.min_tokens = a.gptq_min_tokens;
  o.allow_partial_blocks = a.allow_partial_blocks;
  o.device = a.device;
  o.max_shard_bytes =
      parse_size(a.max_shard_size, "--max-shard-size", kMinShardBytes, kMaxShardBytes);
  o.threads = a.threads;
  o.calib_data = a.calib_data;
  o.calib_samples = a.calib_samples;
  o.calib_seq_len = a.calib_seq_len;
  o.calib_batch = a.calib_batch;
  o.calib_seed = a.calib_seed;
  std::unique_ptr<parallel::Communicator> world = make_tool_world(a.device == "cuda", a.timeout_s);
  install_bus_error_report();  // again: MPI_Init installs its own SIGBUS handler
  const bool chatty = world->rank() == 0 && !a.quiet;

  // Errors the ranks agreed on are printed once and end the run normally; any other one (a peer
  // that died in a transfer) ends the whole job, so that no rank waits for it.
  return parallel::run_or_abort_job([&]() -> int {
    const int rank = world->rank();
    BuiltinFolder builtin;  // removed when this returns
    try {
      // Every rank sees its arguments alike: no collective needed to agree on these.
      if (!o.model_dir.empty() && o.out_dir.empty())
        throw AgreedError("--out is required with --model");
      if (!a.report_json.empty()) {
        try {
          check_report_path(a.report_json);
        } catch (const Error& e) {
          throw AgreedError(e.what());
        }
      }
      const bool demo_output = o.model_dir.empty() && o.out_dir.empty();
      if (o.model_dir.empty()) {
        // The whole path on the built-in model: calibrated on seeded random tokens.
        if (o.calib_data.empty()) {
          o.calib_data = "random";
          if (o.calib_samples == 0) o.calib_samples = 16;
          o.calib_seq_len = o.calib_seq_len > 0 ? std::min<int64_t>(o.calib_seq_len, 64) : 64;
        }
        o.model_dir = builtin_model_dir(*world, a.quiet, builtin);
        if (o.out_dir.empty()) {
          o.out_dir =
              std::filesystem::path(o.model_dir).parent_path().string() + "/quantized-" + a.format;
          o.overwrite = true;
        }
      }
      Progress calibrate("calibrating", "layers", chatty), exporting("exporting", "bytes", chatty);
      o.progress = [&](const char* stage, uint64_t done, uint64_t total) {
        (std::string(stage) == "export" ? exporting : calibrate).update(done, total);
      };
      const QuantizeReport r = quantize_checkpoint(o, std::move(world));
      calibrate.finish();
      exporting.finish();
      // The output is published: a report that cannot be written says so, and says that the
      // output is complete.
      int status = 0;
      if (rank == 0 && !a.report_json.empty()) {
        try {
          write_report_json(a.report_json, r);
        } catch (const std::exception& e) {
          std::fprintf(stderr,
                       "moequant: error: the output '%s' is complete, but the report could not "
                       "be written: %s\n",
                       o.out_dir.c_str(), e.what());
          status = 1;
        }
      }
      if (!chatty) return status;
      const ModelConfig& c = r.config;
      std::printf(
          "model %s (%s): %d layers, %zu MoE, %d experts, hidden %lld, expert intermediate %lld; "
          "layout %s; format %s\n",
          o.model_dir.c_str(), c.model_type.c_str(), c.num_layers, c.moe_layers.size(),
          c.num_experts, static_cast<long long>(c.hidden), static_cast<long long>(c.intermediate),
          r.layout.c_str(), a.format.c_str());
      if (r.calibrated_with_data) {
        const DataCalibrationReport& cr = r.calibration;
        std::printf("calibration data: %lld samples x %lld tokens = %lld tokens (%s)\n",
                    static_cast<long long>(cr.samples),
                    static_cast<long long>(cr.tokens / std::max<int64_t>(cr.samples, 1)),
                    static_cast<long long>(cr.tokens), cr.source.c_str());
        if (o.gptq.enabled)
          std::printf(
              "GPTQ: %zu expert(s) solved on rank 0 in %.2f s%s\n", cr.gptq_solved, cr.gptq_s,
              cr.gptq_too_few_tokens.empty()
                  ? ""
                  : str_cat("; ", cr.gptq_too_few_tokens.size(),
                            " expert(s) with fewer than --gptq-min-tokens ", o.gptq.min_tokens,
                            " rows rounded to nearest: ", join(cr.gptq_too_few_tokens))
                        .c_str());
        if (!cr.experts_without_tokens.empty())
          std::printf(
              "warning: %zu routed expert(s) got no calibration token (their input_scale is "
              "their layer's): %s\n",
              cr.experts_without_tokens.size(), join(cr.experts_without_tokens).c_str());
      }
      std::printf(
          "calibrated %zu weights on rank 0%s; synchronized %zu quantizers with %llu "
          "collective(s)\n",
          r.weights_observed,
          !r.calibrated_with_data ? ""
          : o.calib_all_experts   ? " and every expert's inputs over every token"
                                  : " and every quantized linear's inputs",
          r.sync.entries, static_cast<unsigned long long>(r.sync.total_collectives()));
      if (!a.no_table) print_quantizer_table(r.quantizers);
      print_summary(r, o);
      if (demo_output)
        std::printf(
            "(a demonstration: %s is removed with the built-in model at exit; pass --out DIR to "
            "keep the output)\n",
            o.out_dir.c_str());
      return status;
    } catch (const AgreedError& e) {
      if (rank == 0) std::fprintf(stderr, "moequant: error: %s\n", e.what());
      return 1;
    }
  });
}

}  // namespace moequant::tool
