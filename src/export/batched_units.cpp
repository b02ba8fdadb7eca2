#include "batched_units.h"

#include "moequant/common/error.h"
#include "moequant/core/quantize_batched.h"

namespace moequant::export_detail {

std::vector<std::vector<at::Tensor>> quantize_units_batched(
    const ExportPlan& plan, const std::vector<size_t>& units,
    const std::vector<std::vector<at::Tensor>>& weights, const std::vector<UnitAmax>& amax,
    const std::string& device) {
  MQ_CHECK(!units.empty() && units.size() == weights.size() && units.size() == amax.size(),
           "internal: a batch of ", units.size(), " units");
  const QuantFormat format = plan.units[units[0]].format;
  std::vector<BatchedWeight> batch;
  for (size_t u = 0; u < units.size(); ++u) {
    const PlannedUnit& unit = plan.units[units[u]];
    MQ_CHECK(unit.format == format && weights[u].size() == unit.weights.size(),
             "internal: a batch mixes formats at '", unit.weights[0], "'");
    for (size_t w = 0; w < weights[u].size(); ++w)
      batch.push_back({weights[u][w], amax[u].weight, unit.weights[w]});
  }
  const std::vector<std::vector<StoredTensor>> stored =
      quantize_weights_batched(batch, format, device);
  std::vector<std::vector<at::Tensor>> out;
  size_t next = 0;
  for (size_t u = 0; u < units.size(); ++u) {
    const std::vector<std::vector<StoredTensor>> unit_stored(
        stored.begin() + next, stored.begin() + next + weights[u].size());
    next += weights[u].size();
    out.push_back(finish_unit(plan, plan.units[units[u]], unit_stored, amax[u].input));
  }
  return out;
}

}  // namespace moequant::export_detail
