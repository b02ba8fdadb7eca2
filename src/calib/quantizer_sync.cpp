#include "moequant/calib/quantizer_sync.h"

#include <vector>

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

void sync_weight_amax_in_stage(torch::nn::Module& root, const parallel::ProcessGroups& groups) {
  std::vector<TensorQuantizer*> weights;
  for (const QuantModuleRef& ref : find_quant_modules(root))
    for (auto& nq : ref.module->named_quantizers())
      if (nq.first.rfind("weight_quantizer", 0) == 0 && nq.second->enabled() &&
          !nq.second->amax_slots().empty())
        weights.push_back(nq.second.get());
  for (parallel::Group g : parallel::kAmaxSyncOrder) {
    if (groups.state().size(g) == 1) continue;
    std::vector<float> buf;
    for (TensorQuantizer* q : weights)
      if (reduce_mask(q->scope()) & parallel::group_bit(g))
        buf.insert(buf.end(), q->amax_slots().begin(), q->amax_slots().end());
    if (buf.empty()) continue;
    groups.get(g).all_reduce_max(buf.data(), buf.size());
    size_t at = 0;
    for (TensorQuantizer* q : weights)
      if (reduce_mask(q->scope()) & parallel::group_bit(g))
        for (float& v : q->amax_slots()) v = buf[at++];
  }
}

}  // namespace moequant
