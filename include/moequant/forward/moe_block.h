// The MoE block of a decoder layer: route the tokens, run the routed experts (through an
// ExpertRunner, so the experts may live on this rank or across an expert-parallel group), weight
// their outputs by the router, add the shared expert (gated in Qwen2).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>

#include "moequant/forward/decoder_ops.h"

namespace moequant {

// Runs routed experts: returns, for tokens x [N, H] and their routing, the sum over each token's
// k experts of weight * expert(x) ([N, H]).
class ExpertRunner {
 public:
  virtual ~ExpertRunner() = default;
  virtual at::Tensor run(const at::Tensor& x, const Routing& routing) = 0;
};

// What an expert's linears see during calibration: (global expert, fc1, input rows). fc1's input
// is the tokens routed to the expert; fc2's (down's) is silu(gate(x)) * up(x).
using ExpertInputObserver = std::function<void(int expert, bool fc1, const at::Tensor& input)>;

// What an engine does to an expert linear's input before the GEMM (the static activation
// quantization of a W8A8 / W4A4 checkpoint): returns the input the linear computes with.
using ExpertInputTransform =
    std::function<at::Tensor(int expert, bool fc1, const at::Tensor& input)>;

// For each expert holding rows (`counts[e]` rows of x_sorted, experts ascending), the weighted
// SwiGLU outputs, in the same order: the computation every runner shares. `weights_of(e)` gives
// expert e's (possibly sharded) weights.
at::Tensor run_sorted_experts(const at::Tensor& x_sorted, const std::vector<int64_t>& counts,
                              const std::vector<int>& experts,
                              const std::function<const SwiGluWeights&(int)>& weights_of,
                              const ExpertInputObserver& observe,
                              const ExpertInputTransform& transform = {});

// All experts on this rank, keyed by global index (the single-process forward).
class LocalExperts : public ExpertRunner {
 public:
  explicit LocalExperts(std::map<int, SwiGluWeights> experts, ExpertInputObserver observe = {},
                        ExpertInputTransform transform = {});
  at::Tensor run(const at::Tensor& x, const Routing& routing) override;

 private:
  std::map<int, SwiGluWeights> experts_;
  ExpertInputObserver observe_;
  ExpertInputTransform transform_;
};

// The order in which a runner visits (token, slot) pairs: sorted by expert, tokens ascending
// within an expert (transformers' order, so sums match its rounding closely). `order` indexes
// the flattened [N * k] routing; `counts[e]` is the number of rows of expert e (E entries).
struct ExpertOrder {
  at::Tensor order;             // [N * k] int64
  std::vector<int64_t> counts;  // per global expert
};
ExpertOrder expert_order(const Routing& routing, int num_experts);

// Router + experts (+ shared expert) of tokens x [N, H] (already post-attention normed).
// `hooks` sees the shared expert's inputs.
at::Tensor moe_block(const at::Tensor& x, const DecoderLayerWeights& w, const DecoderConfig& d,
                     ExpertRunner& experts, const ForwardHooks& hooks = {});

}  // namespace moequant
