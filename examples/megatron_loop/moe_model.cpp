#include "moe_model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "autograd_exchange.h"
#include "row_exchange.h"
#include "seeding.h"

namespace loop {

using moequant::parallel::Group;

MoeBlockImpl::MoeBlockImpl(const ModelConfig& config, int layer,
                           const moequant::parallel::ProcessGroups& groups,
                           const at::Device& device)
    : config_(config), groups_(groups), routed_tokens_(config.experts, 0) {
  const auto& ps = groups.state();
  const int64_t E = config.experts, H = config.hidden, I = config.intermediate;
  // The full layer, drawn in one fixed order on every rank.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(config.seed, 1, layer));
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor router = at::randn({E, H}, gen, f32) / std::sqrt(double(H));
  std::vector<at::Tensor> gate, up, down;
  for (int64_t e = 0; e < E; ++e) {
    gate.push_back(at::randn({I, H}, gen, f32) / std::sqrt(double(H)));
    up.push_back(at::randn({I, H}, gen, f32) / std::sqrt(double(H)));
    down.push_back(at::randn({H, I}, gen, f32) / std::sqrt(double(I)));
  }
  router_weight = register_parameter("router_weight", router.to(device));

  moequant::MoeExpertsOptions o;
  o.num_local_experts = ps.num_local_experts();
  o.first_global_expert = ps.local_experts().begin;
  o.num_global_experts = E;
  o.hidden = H;
  o.local_intermediate = I / ps.sizes().etp;
  o.format = config.format;
  o.init_weights = false;  // set below from the seeded full weights
  experts = register_module("experts", moequant::MoeExperts(o));
  // This rank's ETP shard: fc1 = [gate_r; up_r] rows, fc2 = down_r columns (Megatron layout).
  const auto shard = ps.local_etp_shard(I);
  for (int64_t j = 0; j < o.num_local_experts; ++j) {
    const int64_t e = o.first_global_expert + j;
    const at::Tensor fc1 = at::cat(
        {gate[e].narrow(0, shard.begin, shard.size()), up[e].narrow(0, shard.begin, shard.size())});
    const at::Tensor fc2 = down[e].narrow(1, shard.begin, shard.size()).contiguous();
    experts->linear_fc1->set_weight(j, fc1.to(device).clone().requires_grad_(true));
    experts->linear_fc2->set_weight(j, fc2.to(device).clone().requires_grad_(true));
  }
  route_bias_ = at::zeros({E}, f32);
  if (config.avoid_expert >= 0) route_bias_[config.avoid_expert].fill_(-1e9);
  route_bias_ = route_bias_.to(device);
}

at::Tensor MoeBlockImpl::forward(const at::Tensor& x) {
  const auto& ps = groups_.state();
  const int64_t n = x.size(0), E = config_.experts, k = config_.top_k;
  const at::Tensor u = x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + 1e-6);

  // Route: top-k experts per token, weights normalized over the chosen k.
  const auto top = at::topk(at::linear(u, router_weight) + route_bias_, k, /*dim=*/1);
  const at::Tensor probs = at::softmax(std::get<0>(top), 1).reshape({-1});
  const at::Tensor chosen = std::get<1>(top).reshape({-1});
  const at::Tensor order = std::get<1>(at::sort(chosen, /*stable=*/true, 0, false));
  const at::Tensor token =
      at::arange(n, chosen.options()).repeat_interleave(k).index_select(0, order);
  const at::Tensor weight = probs.index_select(0, order);
  const at::Tensor counts_t = at::bincount(chosen, {}, E).to(at::kCPU).to(at::kLong);
  const std::vector<int64_t> counts(counts_t.data_ptr<int64_t>(), counts_t.data_ptr<int64_t>() + E);
  for (int64_t e = 0; e < E; ++e) routed_tokens_[e] += counts[e];

  // Dispatch: what every EP rank sends to every other follows from their per-expert counts.
  moequant::parallel::Communicator& ep = groups_.get(Group::kEP);
  const std::vector<int64_t> all = all_gather_counts(ep, counts);  // [EP x E]
  const auto mine = ps.local_experts();
  const int64_t L = mine.size();
  std::vector<int64_t> send_rows(ep.size(), 0), recv_rows(ep.size(), 0), local(ep.size() * L);
  for (int p = 0; p < ep.size(); ++p) {
    const auto theirs = ps.ep_experts(p);
    for (int64_t e = theirs.begin; e < theirs.end; ++e) send_rows[p] += counts[e];
    for (int64_t j = 0; j < L; ++j) {
      local[p * L + j] = all[p * E + mine.begin + j];
      recv_rows[p] += local[p * L + j];
    }
  }
  const at::Tensor received = dispatch_rows(ep, u.index_select(0, token), send_rows, recv_rows);
  const at::Tensor expert_out = run_local_experts(received, local);
  // Combine: outputs return to their source rank, weighted and summed per token.
  const at::Tensor back = dispatch_rows(ep, expert_out, recv_rows, send_rows);
  return x + at::zeros_like(x).index_add(0, token, back * weight.unsqueeze(1));
}

at::Tensor MoeBlockImpl::run_local_experts(const at::Tensor& received,
                                           const std::vector<int64_t>& counts) {
  const auto& ps = groups_.state();
  moequant::parallel::Communicator& etp = groups_.get(Group::kETP);
  const int T = etp.size(), S = groups_.get(Group::kEP).size();
  const int64_t L = ps.num_local_experts();
  // Every ETP shard runs every token of its experts: gather the rows the ETP ranks received.
  const std::vector<int64_t> all = all_gather_counts(etp, counts);  // [T x S x L]
  std::vector<int64_t> rows(T, 0), start(all.size(), 0);
  int64_t row = 0;
  for (int t = 0; t < T; ++t)
    for (int64_t b = t * S * L; b < (t + 1) * S * L; ++b) {
      start[b] = row;
      row += all[b];
      rows[t] += all[b];
    }
  const at::Tensor gathered = gather_rows(etp, received, rows);  // ordered (etp, ep source, j)

  // Group rows by expert; inside an expert, sources in world-rank order, which is the order of
  // the global batch (TP = PP = 1), as one rank holding every expert would see them.
  std::vector<std::pair<int, int64_t>> sources;  // (world rank, index of block (t, s))
  const auto me = ps.expert_coord();
  for (int t = 0; t < T; ++t)
    for (int s = 0; s < S; ++s)
      sources.emplace_back(ps.expert_rank({t, s, me.edp, me.pp}), int64_t{t} * S + s);
  std::sort(sources.begin(), sources.end());
  std::vector<int64_t> perm, m_splits(L, 0);
  perm.reserve(row);
  for (int64_t j = 0; j < L; ++j)
    for (const auto& src : sources) {
      const int64_t b = src.second * L + j;
      for (int64_t r = 0; r < all[b]; ++r) perm.push_back(start[b] + r);
      m_splits[j] += all[b];
    }
  const at::Tensor index = at::tensor(perm, at::kLong).to(received.device());
  const at::Tensor inverse =
      at::empty_like(index).scatter_(0, index, at::arange(index.numel(), index.options()));
  const at::Tensor out = experts->forward(gathered.index_select(0, index), m_splits);
  // fc2 partial sums (each ETP rank holds I/T of the intermediate) summed over ETP.
  return reduce_scatter_sum(etp, out.index_select(0, inverse), rows);
}

MoeStackImpl::MoeStackImpl(const ModelConfig& config,
                           const moequant::parallel::ProcessGroups& groups,
                           const at::Device& device) {
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int l = 0; l < config.layers; ++l) layers_->push_back(MoeBlock(config, l, groups, device));
}

at::Tensor MoeStackImpl::forward(at::Tensor x) {
  for (int l = 0; l < num_layers(); ++l) x = block(l).forward(x);
  return x;
}

}  // namespace loop
