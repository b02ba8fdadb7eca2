#include "moequant/core/amax_sync.h"

#include "moequant/core/calibrate.h"
#include "moequant/dist/amax_sync.h"

namespace moequant {

namespace {
uint32_t reduce_mask(const ReduceScope& s) {
  using dist::Group;
  using dist::group_bit;
  uint32_t m = 0;
  if (s.tp) m |= group_bit(Group::kTP);
  if (s.etp) m |= group_bit(Group::kETP);
  if (s.ep) m |= group_bit(Group::kEP);
  if (s.dp) m |= group_bit(Group::kDP);
  if (s.edp) m |= group_bit(Group::kEDP);
  return m;
}
}  // namespace

AmaxSyncSummary sync_amax(torch::nn::Module& root, const dist::ProcessGroups& groups) {
  static_assert(TensorQuantizer::kUncalibrated == dist::kUncalibratedAmax,
                "one sentinel for an amax that observed nothing");
  std::vector<dist::AmaxEntry> entries;
  for (const QuantModuleRef& ref : find_quant_modules(root)) {
    for (auto& nq : ref.module->named_quantizers()) {
      TensorQuantizer& q = *nq.second;
      if (!q.enabled()) continue;
      // A per-tensor quantizer that saw nothing still takes its slot, holding the sentinel, so
      // that every rank packs the same list (per-channel ones need their row count first).
      if (q.amax_slots().empty() && q.axis() == AmaxAxis::kPerTensor)
        q.amax_slots().assign(1, TensorQuantizer::kUncalibrated);
      if (q.amax_slots().empty()) continue;
      entries.push_back({q.name(), &q.amax_slots(), reduce_mask(q.scope())});
    }
  }
  const dist::AmaxSyncReport report = dist::sync_amax(entries, groups);
  AmaxSyncSummary s;
  s.quantizers = entries.size();
  s.collectives = report.total_collectives();
  s.uncalibrated = report.uncalibrated;
  return s;
}

}  // namespace moequant
