// Producing the bytes of one planned expert unit (docs/formats.md): the full weights assembled from
// their ETP shards (fc1's gate and up rows, fc2's down columns), quantized with the unit's amax,
// every scale checked, gate and up checked to carry equal scalar scales. Internal to the
// exporter.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "moequant/core/quantize.h"
#include "moequant/export/export_plan.h"
#include "moequant/export/export_source.h"
#include "moequant/export/weight_amax.h"

namespace moequant::export_detail {

// The full [out, in] weights of a unit from its shards in ETP order: fc1 -> {gate, up},
// fc2 -> {down}. With one shard these are the shard's own tensors (views, no copy).
std::vector<at::Tensor> assemble_unit(const std::vector<ExpertShard>& shards, bool fc1);

// What a unit is quantized with: the weight amax shared by its weights (empty when the unit is
// stored unquantized) and, for static-activation schemes, the input amax (< 0: none).
struct UnitAmax {
  std::vector<float> weight;
  float input = -1.0f;
};

// The input amax of a unit for a static-activation scheme: its input quantizer's, or, for an
// expert that saw no token, the amax of the layer's shared input quantizer (every token of the
// layer; `*fell_back` set). Errors name the layer when no expert of it saw a token, or a zero
// amax (an input_scale of 0 loads as 1/0 in serving engines).
float unit_input_amax(const ExportSource& source, const PlannedUnit& unit, bool* fell_back);

// The stored tensors of a unit's weights (one list per weight, in the order gate, up | down, as
// quantize_weight returns them) turned into the host bytes of its planned tensors, in
// unit.tensors order: an input_scale added for static-activation schemes (`input_amax` >= 0),
// names and sizes checked against the plan, every scale checked finite and non-zero, and gate and
// up checked to carry equal scalar scales. Errors name the tensor.
std::vector<at::Tensor> finish_unit(const ExportPlan& plan, const PlannedUnit& unit,
                                    const std::vector<std::vector<StoredTensor>>& stored,
                                    float input_amax);

// The host bytes of every planned tensor of `unit`, in unit.tensors order, quantized on
// `device` one matrix at a time. Errors name the tensor.
std::vector<at::Tensor> quantize_unit(const ExportPlan& plan, const PlannedUnit& unit,
                                      const std::vector<at::Tensor>& weights, const UnitAmax& amax,
                                      const std::string& device);

}  // namespace moequant::export_detail
