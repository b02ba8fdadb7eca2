#include "moequant/forward/moe_block.h"

#include <ATen/ATen.h>

#include "moequant/common/error.h"
#include "moequant/forward/gpt_oss_ops.h"

namespace moequant {

ExpertOrder expert_order(const Routing& routing, int num_experts) {
  const at::Tensor flat = routing.experts.reshape({-1});
  // A stable sort by expert keeps the tokens of one expert in ascending order.
  const at::Tensor order = std::get<1>(flat.sort(c10::optional<bool>(true), /*dim=*/0));
  const at::Tensor counts =
      at::bincount(flat, /*weights=*/{}, num_experts).to(at::kCPU).to(at::kLong);
  ExpertOrder out{order, std::vector<int64_t>(num_experts, 0)};
  for (int e = 0; e < num_experts; ++e) out.counts[e] = counts.data_ptr<int64_t>()[e];
  return out;
}

at::Tensor run_sorted_experts(const at::Tensor& x_sorted, const std::vector<int64_t>& counts,
                              const std::vector<int>& experts,
                              const std::function<const SwiGluWeights&(int)>& weights_of,
                              const ExpertInputObserver& observe,
                              const ExpertInputTransform& transform) {
  std::vector<at::Tensor> outs;
  int64_t row = 0;
  for (size_t i = 0; i < experts.size(); ++i) {
    if (counts[i] == 0) continue;
    const at::Tensor xe = x_sorted.narrow(0, row, counts[i]);
    row += counts[i];
    const SwiGluWeights& w = weights_of(experts[i]);
    if (transform) {  // the input of each linear as the engine quantizes it
      const at::Tensor x1 = transform(experts[i], true, xe);
      const at::Tensor h = expert_hidden(x1, w);
      outs.push_back(expert_down(transform(experts[i], false, h), w));
      continue;
    }
    at::Tensor hidden;
    outs.push_back(swiglu(xe, w, &hidden));
    if (observe) {
      observe(experts[i], true, xe);
      observe(experts[i], false, hidden);
    }
  }
  MQ_CHECK(row == x_sorted.size(0), "internal: ", x_sorted.size(0), " routed rows, ", row,
           " run by experts");
  if (outs.empty()) return at::zeros({0, x_sorted.size(1)}, x_sorted.options());
  return at::cat(outs, 0);
}

LocalExperts::LocalExperts(std::map<int, SwiGluWeights> experts, ExpertInputObserver observe,
                           ExpertInputTransform transform)
    : experts_(std::move(experts)),
      observe_(std::move(observe)),
      transform_(std::move(transform)) {}

at::Tensor LocalExperts::run(const at::Tensor& x, const Routing& routing) {
  const int64_t n = x.size(0), k = routing.experts.size(1);
  const int num_experts = experts_.empty() ? 0 : experts_.rbegin()->first + 1;
  const ExpertOrder eo = expert_order(routing, num_experts);
  const at::Tensor tokens = at::floor_divide(eo.order, k);
  std::vector<int> ids(num_experts);
  for (int e = 0; e < num_experts; ++e) ids[e] = e;
  const at::Tensor y = run_sorted_experts(
      x.index_select(0, tokens), eo.counts, ids,
      [&](int e) -> const SwiGluWeights& {
        auto it = experts_.find(e);
        MQ_CHECK(it != experts_.end(), "router chose expert ", e, ", which is not loaded");
        return it->second;
      },
      observe_, transform_);
  const at::Tensor w = routing.weights.reshape({-1}).index_select(0, eo.order).unsqueeze(1);
  return at::zeros({n, x.size(1)}, x.options()).index_add_(0, tokens, y * w);
}

at::Tensor moe_block(const at::Tensor& x, const DecoderLayerWeights& w, const DecoderConfig& d,
                     ExpertRunner& experts, const ForwardHooks& hooks) {
  const Routing routing = route(x, w.router, w.router_bias, d);
  at::Tensor out = experts.run(x, routing);
  if (!w.shared_expert.gate.defined()) return out;
  const at::Tensor shared =
      swiglu(x, w.shared_expert, hooks, TensorUse::kSharedGate, TensorUse::kSharedDown);
  // Qwen2 scales its shared expert by a sigmoid gate; DeepSeek and GLM add theirs as it is.
  return w.shared_expert_gate.defined()
             ? out + at::sigmoid(at::linear(x, w.shared_expert_gate)) * shared
             : out + shared;
}

}  // namespace moequant
