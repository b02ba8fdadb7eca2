// Calibration with data (docs/design.md, "Calibration with data"): calibration token batches run
// through the model's own forward, streamed layer by layer, so that every input quantizer of the
// routed experts observes the activations that enter its linear, and every weight quantizer its
// weights (in the same pass: each checkpoint byte is read once).
//
// Distributed the Megatron inference way: the ranks of a pipeline stage split the samples
// (attention data-parallel); routed tokens travel to the EP rank holding their expert and back,
// ETP shards each compute their part; stage s hands its hidden states to stage s + 1. Memory:
// one layer's weights on this rank plus the calibration activations.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "moequant/calib/calibration_data.h"
#include "moequant/hf/expert_gptq.h"
#include "moequant/hf/hf_moe_model.h"
#include "moequant/parallel/process_groups.h"

namespace moequant {

struct DataCalibrationOptions {
  int64_t batch = 8;           // samples per forward batch on a rank
  std::string device = "cpu";  // where the forward runs ("cpu", "cuda")
  // --calib-all-experts: every routed expert observes the inputs of all tokens of its layer (its
  // layer's output still follows the routing): no expert is left without an input amax. Costs
  // E / top-k times the routed expert GEMMs.
  bool all_experts = false;
  // --algorithm gptq: the experts' Hessians accumulated in the same pass and solved after each
  // layer, whose output is then recomputed from the quantized experts (hf/expert_gptq.h).
  GptqSettings gptq;
  // Called on rank 0 after each layer of its stage: (layers done, layers of the stage).
  std::function<void(size_t, size_t)> progress;
};

struct DataCalibrationReport {
  int64_t samples = 0, tokens = 0;  // over all ranks
  std::string source;               // what the data came from (CalibrationData::source)
  size_t weights_observed = 0;      // on this rank
  // "layer L expert E" of every routed expert that no calibration token reached, sorted; the
  // same on every rank. Their input_scale falls back to the layer's (docs/formats.md).
  std::vector<std::string> experts_without_tokens;
  // This rank: reading weights (a loader thread, overlapped with the forward of the layer
  // before), the part of it the forward waited for, and running the forward.
  double read_s = 0, read_wait_s = 0, forward_s = 0;
  // GPTQ: experts solved on this rank, "layer L expert E" of those with too few tokens (rounded
  // to nearest; the same on every rank), and the seconds of this rank's solves.
  size_t gptq_solved = 0;
  std::vector<std::string> gptq_too_few_tokens;
  double gptq_s = 0;
};

// Collective over `groups` (every rank calls it with the same data). Observes the input and
// weight quantizers of `model` (sync them afterwards with sync_quantizers).
DataCalibrationReport calibrate_with_data(HfMoeModel& model, const parallel::ProcessGroups& groups,
                                          const CalibrationData& data,
                                          const DataCalibrationOptions& options);

}  // namespace moequant
