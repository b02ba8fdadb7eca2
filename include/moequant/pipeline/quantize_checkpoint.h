// The main job as one library call (docs/design.md, "The library pipeline"): quantize a Hugging
// Face MoE folder the way Megatron holds it and export a folder serving engines load. Every rank of
// the job calls it with its world communicator; `moequant quantize` is a command line over it.
//
//   load       this rank's layers, experts and ETP shards (headers only; weights stay mapped)
//   calibrate  weight amax, one batched pass per layer; with calibration data, the model's own
//              forward streamed layer by layer feeds every input quantizer in the same pass
//   sync       every quantizer's amax reduced over its groups, one collective per group
//   export     every rank writes its own tensors into the pre-sized output files
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "moequant/core/format.h"
#include "moequant/export/exporter.h"
#include "moequant/hf/data_calibration.h"
#include "moequant/model/model_config.h"
#include "moequant/parallel/amax_sync.h"
#include "moequant/parallel/communicator.h"

namespace moequant {

struct QuantizeOptions {
  std::string model_dir;  // a Hugging Face folder: config.json + safetensors
  std::string out_dir;    // must not exist unless `overwrite`
  bool overwrite = false;
  bool durable = false;  // fsync the output files before publishing (ExportOptions::durable)
  QuantFormat format = QuantFormat::kFP8;
  // Layout; 0 = not given. With no size given the world is pure expert parallelism (EP = world).
  int tp = 0, ep = 0, etp = 0, pp = 0;
  bool per_expert_amax = false;      // one amax per expert instead of one per grouped linear
  std::vector<std::string> exclude;  // linear modules left unquantized (glob or re:)
  // --quantize all-linear: attention, shared experts and dense MLPs too (ModelOpt's default
  // set: never the router, its gates, embeddings, norms or lm_head).
  bool quantize_dense = false;
  // --kv-cache fp8: k_scale / v_scale of every attention layer, from the calibration forward.
  bool kv_cache_fp8 = false;
  bool allow_partial_blocks = false;  // fp8_block whose blocks vLLM/SGLang's MoE cannot take
  std::string device = "cpu";         // where weights are quantized: "cpu" or "cuda"
  uint64_t max_shard_bytes =
      2000000000;   // "2GB": several files, so parallel writers rarely share one
  int threads = 0;  // producer threads per rank (0: the rank's share of its node's cores)
  // Calibration with data: "" (weights only: the dynamic/weight-only schemes), a .jsonl of
  // {"input_ids": [...]} lines, or "random" (seeded random tokens, for trying and benchmarking).
  // With data the static-activation schemes are written (ModelOpt FP8 / NVFP4 + input_scale).
  std::string calib_data;
  int64_t calib_samples = 0;       // 0: every line of the file (random: 16)
  int64_t calib_seq_len = 0;       // 0: 512, or the model's max_position_embeddings when smaller
  int64_t calib_batch = 8;         // samples per forward batch on a rank
  bool calib_all_experts = false;  // every expert observes every token (DataCalibrationOptions)
  // --algorithm gptq (int4, nvfp4; with calibration data): the experts quantized by GPTQ during
  // the calibration forward instead of rounded to nearest (hf/expert_gptq.h).
  GptqSettings gptq;
  uint64_t calib_seed = 0;  // for "random"
  // Stage progress on rank 0: (stage, done, total) with stage "calibrate" (layers, or layers x
  // batches with data) or "export" (bytes of rank 0's own share).
  std::function<void(const char* stage, uint64_t done, uint64_t total)> progress;
};

// One quantizer after the sync, for the statistics table.
struct QuantizerStat {
  std::string name;    // "layers.3.linear_fc1.weight_quantizer"
  std::string shape;   // "128 x [1536, 2048]" (shared) or "[1536, 2048]", "-" for inputs
  float amax = -1.0f;  // -1: uncalibrated
  QuantFormat format = QuantFormat::kNone;
};

struct QuantizeReport {
  ModelConfig config;
  std::string layout;           // ParallelState::describe()
  uint64_t bytes_read = 0;      // the source checkpoint's tensor bytes
  size_t weights_observed = 0;  // on this rank
  bool calibrated_with_data = false;
  DataCalibrationReport calibration;  // with calibration data
  parallel::AmaxSyncReport sync;      // on this rank
  ExportSummary exported;
  std::vector<QuantizerStat> quantizers;  // every rank's, merged, sorted by name (rank 0 only)
  double load_s = 0, calibrate_s = 0, sync_s = 0, export_s = 0, total_s = 0;
};

// Collective over `world`: every rank calls it. Errors every rank sees alike, or that the ranks
// agreed on, are thrown as AgreedError on every rank; any other failure (a peer that died in a
// transfer) as moequant::Error on the ranks that saw it (the tool then ends the whole job).
// On failure no output folder that looks complete is left.
QuantizeReport quantize_checkpoint(const QuantizeOptions& options,
                                   std::unique_ptr<parallel::Communicator> world);

// The layout a QuantizeOptions asks for on a world of `world_size` ranks.
parallel::ParallelSizes layout_of(const QuantizeOptions& options, int world_size);

}  // namespace moequant
