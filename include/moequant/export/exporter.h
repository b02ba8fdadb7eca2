// The rank-aware exporter (docs/design.md, "Rank-aware export"). Every rank derives the same plan;
// rank 0 creates every output file at its final size with its header in place; then every rank
// produces its own tensors (expert units assembled from their ETP shards, quantized; passthrough
// tensors copied) and writes them straight into place, with a few producer threads per rank so
// that reading, quantizing and writing overlap. Nothing travels but ETP shards to their producer.
// Rank 0 writes the index and the JSON files last, after a collective check that every planned
// tensor was written exactly once, and renames the folder into place.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "moequant/export/checkpoint_scheme.h"
#include "moequant/export/export_source.h"
#include "moequant/export/weight_amax.h"
#include "moequant/model/model_config.h"
#include "moequant/parallel/communicator.h"
#include "moequant/parallel/parallel_state.h"

namespace moequant {

// The format written is the one the source's weight quantizers hold (ExportSource::weight_format),
// so that the quantizers and the plan cannot disagree.
struct ExportOptions {
  std::string out_dir;
  bool overwrite = false;
  // True when calibration data ran through the model: the static-activation schemes (ModelOpt
  // FP8 / NVFP4 with input_scale) are written; false gives the weight-only ones
  // (choose_scheme).
  bool activations_calibrated = false;
  std::vector<std::string> exclude;  // linear modules left unquantized (glob or re:)
  // --quantize all-linear: the dense linears too (the source must hold their quantizers).
  bool quantize_dense = false;
  // --kv-cache fp8: k_scale / v_scale per attention layer and the config keys that declare them
  // (ModelOpt schemes with calibrated activations only; the source holds the KV quantizers).
  bool kv_cache_fp8 = false;
  bool allow_partial_blocks = false;  // write what the engines' shape rules refuse (export_plan.h)
  uint64_t max_shard_bytes =
      2000000000;              // "2GB": several files, so parallel writers rarely share one
  std::string device = "cpu";  // where assembled weights are quantized ("cpu", "cuda")
  int threads = 0;             // producer threads of this rank (0: its share of the node's cores)
  UncalibratedWeights uncalibrated_weights = UncalibratedWeights::kError;
  // fsync every output file before the folder is published, so that a complete-looking folder
  // survives a power loss too. Off by default, as for `cp` and safetensors' save_file: the
  // rename that publishes the folder already keeps a killed job from leaving one behind.
  bool durable = false;
  // Called on rank 0 as its own tensors are written: (bytes done, bytes it produces).
  std::function<void(uint64_t, uint64_t)> progress;
};

// One rank's export: where its time went (seconds summed over its producer threads) and memory.
struct ExportRankStats {
  int rank = 0;
  uint64_t bytes_written = 0;
  double read_s = 0, quantize_s = 0, write_s = 0;  // summed over producer threads
  double wait_s = 0;                               // main thread blocked on peers / a full queue
  double sync_s = 0;  // closing this rank's files (with ExportOptions::durable: their fsync)
  int threads = 0;
  uint64_t peak_rss_bytes = 0;
  // nvfp4 of E2M1-coded experts (an MXFP4 source): 16-blocks written, and of them those not kept
  // exactly (quantized by the ordinary rule).
  int64_t e2m1_blocks = 0, e2m1_requantized_blocks = 0;
};

struct ExportSummary {
  CheckpointScheme scheme;
  size_t tensors = 0;  // in the checkpoint
  size_t files = 0;
  uint64_t bytes = 0;                   // tensor bytes in the checkpoint
  uint64_t quantized_params = 0;        // elements of quantized weights (experts, dense linears)
  uint64_t quantized_bytes = 0;         // bytes they are stored in (data + scales)
  std::vector<std::string> side_files;  // copied from the source folder (tokenizer, ...), by name
  std::vector<std::string> warnings;    // identical on every rank
  std::vector<std::string> notes;       // what the engines take of it (export_plan.h)
  std::vector<ExportRankStats> ranks;   // every rank's, indexed by rank
};

// Exports the checkpoint. Collective over `world` (every rank calls it, with its own source).
// On any failure no folder that looks complete is left at out_dir.
ExportSummary export_checkpoint(const ModelConfig& config, const parallel::ParallelState& ps,
                                parallel::Communicator& world, const ExportSource& source,
                                const ExportOptions& options);

}  // namespace moequant
