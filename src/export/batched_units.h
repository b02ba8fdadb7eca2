// Expert units quantized on a GPU in batches (DESIGN.md, "Rank-aware export"): the weights of
// many units of one layer (fc1: gate and up of each expert; fc2: down) packed into one pinned
// buffer, copied to the device once, quantized by ONE kernel launch (mq_cuda_quantize_batched,
// bit-exact with the per-matrix kernels and the CPU path), and copied back once, on the calling
// thread's own stream so that several producer threads overlap copies and kernels. Internal to
// the exporter.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "moequant/export/export_plan.h"
#include "unit_producer.h"

namespace moequant::export_detail {

// For each of `units` (indices into plan.units, all quantized in one format), the host bytes of
// its planned tensors in unit.tensors order; `weights[i]` and `amax[i]` are unit i's full weights
// (assemble_unit) and amax. Errors name the tensor, as quantize_unit's do.
std::vector<std::vector<at::Tensor>> quantize_units_batched(
    const ModelConfig& config, const ExportPlan& plan, const std::vector<size_t>& units,
    const std::vector<std::vector<at::Tensor>>& weights, const std::vector<UnitAmax>& amax,
    const std::string& device);

}  // namespace moequant::export_detail
