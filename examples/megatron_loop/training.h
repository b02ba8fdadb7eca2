// Data-parallel training of the MoE stack on synthetic data: every rank takes its slice of a
// seeded global batch, gradients flow through the expert dispatch (autograd_exchange.h), and
// replicated parameters are kept identical by summing their gradients over the ranks holding
// replicas (router: DP; experts: EDP), as Megatron's gradient all-reduce does.
#pragma once

#include <torch/optim/adam.h>

#include <memory>

#include "moe_model.h"
#include "options.h"
#include "seeding.h"

namespace loop {

class Trainer {
 public:
  Trainer(MoeStack model, const moequant::parallel::ProcessGroups& groups,
          const LoopOptions& options, const at::Device& device);
  // One optimizer step on global batch `step`; returns the loss over the whole global batch
  // (mean squared error against the teacher), the same on every rank.
  double step(int step);

 private:
  // Sums the gradients of `params` over `comm` (one collective for all of them).
  static void sum_gradients(moequant::parallel::Communicator& comm,
                            const std::vector<at::Tensor>& params);

  MoeStack model_;
  const moequant::parallel::ProcessGroups& groups_;
  LoopOptions options_;
  at::Device device_;
  Teacher teacher_;
  std::vector<at::Tensor> replicated_;  // routers
  std::vector<at::Tensor> expert_params_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
};

}  // namespace loop
