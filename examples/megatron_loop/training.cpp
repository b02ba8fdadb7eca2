#include "training.h"

#include <ATen/ATen.h>

#include "row_exchange.h"

namespace loop {

using moequant::parallel::Group;

Trainer::Trainer(MoeStack model, const moequant::parallel::ProcessGroups& groups,
                 const LoopOptions& options, const at::Device& device)
    : model_(std::move(model)),
      groups_(groups),
      options_(options),
      device_(device),
      teacher_(options.seed, options.hidden, device) {
  for (int l = 0; l < model_->num_layers(); ++l) {
    MoeBlockImpl& b = model_->block(l);
    replicated_.push_back(b.router_weight);
    for (const at::Tensor& p : b.experts->parameters()) expert_params_.push_back(p);
  }
  optimizer_ = std::make_unique<torch::optim::Adam>(model_->parameters(),
                                                    torch::optim::AdamOptions(options.lr));
}

double Trainer::step(int step) {
  const auto& ps = groups_.state();
  const at::Tensor x = batch_slice(options_.seed, 2, step, options_.tokens, options_.hidden,
                                   ps.dense_coord().dp, ps.dp(), device_);
  const at::Tensor target = teacher_(x);
  optimizer_->zero_grad();
  // This rank's share of the global mean: the ranks' losses add up to the global loss, and
  // their gradients to its gradient.
  const at::Tensor loss =
      (model_->forward(x) - target).pow(2).sum() / double(options_.tokens * options_.hidden);
  loss.backward();
  sum_gradients(groups_.get(Group::kDP), replicated_);
  sum_gradients(groups_.get(Group::kEDP), expert_params_);
  optimizer_->step();

  at::Tensor total = loss.detach().reshape({1}).to(at::kCPU, at::kDouble);
  all_reduce_sum(groups_.get(Group::kDP), total);
  return total.item<double>();
}

void Trainer::sum_gradients(moequant::parallel::Communicator& comm,
                            const std::vector<at::Tensor>& params) {
  if (comm.size() == 1 || params.empty()) return;
  std::vector<at::Tensor> flat;
  for (const at::Tensor& p : params)
    flat.push_back(p.grad().defined() ? p.grad().reshape({-1})
                                      : at::zeros({p.numel()}, p.options()));
  at::Tensor all = at::cat(flat);
  all_reduce_sum(comm, all);
  int64_t at = 0;
  for (const at::Tensor& p : params) {
    const at::Tensor part = all.narrow(0, at, p.numel()).view(p.sizes());
    if (p.grad().defined())
      p.mutable_grad().copy_(part);
    else
      p.mutable_grad() = part.clone();
    at += p.numel();
  }
}

}  // namespace loop
