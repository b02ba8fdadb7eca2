// Synchronizing every quantizer of a module tree over the parallel groups (DESIGN.md, "Amax
// synchronization"): the bridge from TensorQuantizer's ReduceScope to the batched, one
// collective per group, sync of the distributed layer.
#pragma once

#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "moequant/dist/process_groups.h"

namespace moequant {

struct AmaxSyncSummary {
  size_t quantizers = 0;
  size_t collectives = 0;
  // Quantizers still uncalibrated after the sync (no rank observed anything), sorted; the same
  // list on every rank of their groups.
  std::vector<std::string> uncalibrated;
};

// Every enabled quantizer of every QuantModule under `root` takes part, uncalibrated ones with
// a sentinel, so every rank issues the same collectives. Collective over `groups`.
AmaxSyncSummary sync_amax(torch::nn::Module& root, const dist::ProcessGroups& groups);

}  // namespace moequant
