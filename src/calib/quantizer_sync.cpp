#include "moequant/calib/quantizer_sync.h"

#include "moequant/calib/calibrate.h"

namespace moequant {

namespace {
uint32_t reduce_mask(const ReduceScope& s) {
  using parallel::Group;
  using parallel::group_bit;
  uint32_t m = 0;
  if (s.tp) m |= group_bit(Group::kTP);
  if (s.etp) m |= group_bit(Group::kETP);
  if (s.ep) m |= group_bit(Group::kEP);
  if (s.dp) m |= group_bit(Group::kDP);
  if (s.edp) m |= group_bit(Group::kEDP);
  return m;
}
}  // namespace

parallel::AmaxSyncReport sync_quantizers(torch::nn::Module& root,
                                         const parallel::ProcessGroups& groups) {
  std::vector<parallel::AmaxEntry> entries;
  for (const QuantModuleRef& ref : find_quant_modules(root)) {
    for (auto& nq : ref.module->named_quantizers()) {
      TensorQuantizer& q = *nq.second;
      if (!q.enabled()) continue;
      // A per-tensor quantizer that saw nothing still takes its slot, holding the sentinel, so
      // that every rank packs the same list (per-channel ones need their row count first).
      if (q.amax_slots().empty() && q.axis() == AmaxAxis::kPerTensor)
        q.amax_slots().assign(1, parallel::kUncalibratedAmax);
      if (q.amax_slots().empty()) continue;
      entries.push_back({q.name(), &q.amax_slots(), reduce_mask(q.scope())});
    }
  }
  return parallel::sync_amax(entries, groups);
}

}  // namespace moequant
