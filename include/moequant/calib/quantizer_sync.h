// Synchronizing every quantizer of a module tree over the parallel groups (docs/design.md, "Amax
// synchronization"): the bridge from TensorQuantizer's ReduceScope to the batched sync of the
// parallel layer (one collective per group, parallel::sync_amax).
#pragma once

#include <torch/nn/module.h>

#include "moequant/parallel/amax_sync.h"
#include "moequant/parallel/process_groups.h"

namespace moequant {

// Every enabled quantizer of every QuantModule under `root` takes part, uncalibrated ones with
// the sentinel parallel::kUncalibratedAmax, so every rank issues the same collectives.
// Collective over `groups`; the report's `uncalibrated` lists the quantizers no rank observed.
parallel::AmaxSyncReport sync_quantizers(torch::nn::Module& root,
                                         const parallel::ProcessGroups& groups);

// The weight quantizers under `root` only, MAX-reduced over the groups their scope names, with
// no agreement check over the world: collective over those groups alone, so that one pipeline
// stage can make its layer's weight amax final mid-run (GPTQ needs nvfp4's weight_scale_2 before
// it solves) while the other stages are elsewhere. Every rank of the stage must hold the same
// quantizers under `root` (one layer's experts); sync_quantizers later checks the names.
void sync_weight_amax_in_stage(torch::nn::Module& root, const parallel::ProcessGroups& groups);

}  // namespace moequant
