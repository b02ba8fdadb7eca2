// Expert units quantized on a GPU in batches: the weights of many units of one layer (fc1: gate
// and up of each expert; fc2: down) quantized by ONE kernel launch (core/quantize_batched.h),
// then finished like any unit (unit_producer.h). Internal to the exporter.
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
    const ExportPlan& plan, const std::vector<size_t>& units,
    const std::vector<std::vector<at::Tensor>>& weights, const std::vector<UnitAmax>& amax,
    const std::string& device);

}  // namespace moequant::export_detail
