// Routed experts spread the Megatron way (docs/design.md, "Calibration with data"): each rank
// routes its own tokens; every token row travels to the EP rank holding its expert (an all-to-all
// over the EP group), the ETP ranks of that expert each run their shard on every such row (an
// all-gather over ETP; fc1 columns, fc2 rows), the fc2 partial sums are added over ETP, and the
// results travel back (the reverse all-to-all). Every member of a group must call run() the same
// number of times, with any number of tokens (none included).
#pragma once

#include <map>

#include "moequant/forward/moe_block.h"
#include "moequant/parallel/process_groups.h"

namespace moequant {

class DispatchedExperts : public ExpertRunner {
 public:
  // `shards`: this rank's ETP shard of each expert it holds, by global index (gate/up rows and
  // down columns of its ETP range). `observe` sees each local expert's inputs (fc1: the rows
  // routed to it from every rank of its EP group; fc2: this shard's silu(gate) * up).
  DispatchedExperts(const parallel::ProcessGroups& groups, int num_experts,
                    std::map<int, SwiGluWeights> shards, ExpertInputObserver observe = {});
  // --calib-all-experts: `observe` sees, for every local expert, the inputs of ALL tokens of the
  // layer (every rank of the EP x ETP group brings its own; EDP replicas are covered by the amax
  // sync), not only those routed to it; the output still follows the routing. `flush` is called
  // after each chunk of observed rows (the observer may reduce and free them).
  void observe_all_tokens(std::function<void()> flush);
  // No observation from here on (GPTQ's second pass over the layer, from the quantized weights).
  void stop_observing() {
    observe_ = {};
    all_tokens_ = false;
  }
  // This rank's shards, to replace them (GPTQ's dequantized weights) between calls.
  std::map<int, SwiGluWeights>& shards() { return shards_; }
  at::Tensor run(const at::Tensor& x, const Routing& routing) override;

 private:
  // The all-token observation of one call's tokens x [N, H].
  void observe_every_expert(const at::Tensor& x);

  // Rows [x_sorted] for each local expert in `counts` order -> fc2 outputs, summed over ETP.
  at::Tensor run_local(const at::Tensor& x_sorted, const std::vector<int64_t>& counts);

  const parallel::ProcessGroups& groups_;
  int num_experts_;
  int experts_per_rank_;
  int first_local_;
  std::map<int, SwiGluWeights> shards_;
  ExpertInputObserver observe_;
  bool all_tokens_ = false;
  std::function<void()> flush_;
};

}  // namespace moequant
