// The host's model: a stack of MoE blocks as a Megatron-style job holds them. Each block has a
// router replicated on every rank and its routed experts in a moequant::MoeExperts (GroupedLinear
// fc1 / fc2), of which this rank holds the experts of its EP rank, split over ETP.
//
//   u = rms_norm(x);  top-k experts per token from router(u);
//   tokens -> the experts' EP ranks (all-to-all over EP) -> all ETP shards (gather over ETP);
//   fc2 partial sums summed over ETP (reduce-scatter) -> back to their source rank (all-to-all);
//   x + sum_k p_k * expert_k(u)
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "moequant/modules/moe_experts.h"
#include "moequant/parallel/process_groups.h"

namespace loop {

struct ModelConfig {
  int layers = 2;
  int experts = 8;
  int64_t hidden = 64;
  int64_t intermediate = 32;
  int top_k = 2;
  int avoid_expert = -1;  // >= 0: never routed to
  uint64_t seed = 0;
  moequant::QuantFormat format = moequant::QuantFormat::kFP8;
};

class MoeBlockImpl : public torch::nn::Module {
 public:
  // Seeds the FULL layer (router and all experts at full intermediate size) from (seed, layer)
  // on every rank and keeps this rank's shards, so every layout holds the same model.
  MoeBlockImpl(const ModelConfig& config, int layer,
               const moequant::parallel::ProcessGroups& groups, const at::Device& device);

  at::Tensor forward(const at::Tensor& x);

  // Tokens of this rank routed to each global expert since the last reset.
  const std::vector<int64_t>& routed_tokens() const { return routed_tokens_; }
  void reset_routed_tokens() { routed_tokens_.assign(routed_tokens_.size(), 0); }

  at::Tensor router_weight;  // [E, H], the same on every rank (gradients summed over DP)
  moequant::MoeExperts experts{nullptr};

 private:
  // Runs this rank's experts on the rows it received from each EP rank (counts[s * L + j]: rows
  // from EP rank s for local expert j) and returns their outputs in the same row order.
  at::Tensor run_local_experts(const at::Tensor& received, const std::vector<int64_t>& counts);

  ModelConfig config_;
  const moequant::parallel::ProcessGroups& groups_;
  at::Tensor route_bias_;  // [E]: 0, or -1e9 for the avoided expert
  std::vector<int64_t> routed_tokens_;
};
TORCH_MODULE(MoeBlock);

class MoeStackImpl : public torch::nn::Module {
 public:
  MoeStackImpl(const ModelConfig& config, const moequant::parallel::ProcessGroups& groups,
               const at::Device& device);
  at::Tensor forward(at::Tensor x);
  MoeBlockImpl& block(int layer) { return *layers_[layer]->as<MoeBlockImpl>(); }
  int num_layers() const { return static_cast<int>(layers_->size()); }

 private:
  torch::nn::ModuleList layers_;
};
TORCH_MODULE(MoeStack);

}  // namespace loop
