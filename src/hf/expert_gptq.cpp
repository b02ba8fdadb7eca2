#include "moequant/hf/expert_gptq.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "moequant/common/error.h"
#include "moequant/common/stopwatch.h"
#include "moequant/core/gptq.h"
#include "moequant/hf/hf_moe_model.h"

namespace moequant {

namespace {

// Experts solved per GPTQ call: bounds the float32 copies of H and W the solver holds at once
// (Qwen3-30B-A3B's fc1: 32 x 2048^2 floats = 512 MB per copy of H).
constexpr size_t kExpertsPerSolve = 32;

std::vector<float> amax_of(const GroupedLinear& g, const parallel::ParallelState& ps,
                           const std::vector<int>& experts) {
  std::vector<float> out;
  for (int e : experts) out.push_back(g->quantizer_for(ps.local_expert(e))->amax_scalar());
  return out;
}

}  // namespace

ExpertHessianSet::ExpertHessianSet(std::vector<int> experts, int64_t hidden, int64_t intermediate,
                                   const at::Device& device)
    : experts_(std::move(experts)), tokens_(experts_.size(), 0) {
  for (size_t i = 0; i < experts_.size(); ++i) index_[experts_[i]] = i;
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  const int64_t e = static_cast<int64_t>(experts_.size());
  fc1_ = at::zeros({e, hidden, hidden}, opts);
  fc2_ = at::zeros({e, intermediate, intermediate}, opts);
}

void ExpertHessianSet::add(int expert, bool fc1, const at::Tensor& x) {
  if (x.numel() == 0) return;
  auto it = index_.find(expert);
  MQ_CHECK(it != index_.end(), "internal: expert ", expert, " has no Hessian here");
  at::Tensor h = (fc1 ? fc1_ : fc2_)[static_cast<int64_t>(it->second)];
  const at::Tensor xd = x.to(h.device()).to(at::kDouble);
  h.addmm_(xd.t(), xd, /*beta=*/1.0, /*alpha=*/2.0);  // H += 2 x^T x
  if (fc1) tokens_[it->second] += x.size(0);
}

void ExpertHessianSet::all_reduce(parallel::Communicator& replicas) {
  if (replicas.size() == 1) return;
  for (at::Tensor* h : {&fc1_, &fc2_}) {
    at::Tensor host = h->to(at::kCPU).contiguous();
    replicas.all_reduce_sum(host.data_ptr<double>(), static_cast<size_t>(host.numel()));
    *h = host.to(h->device());
  }
  replicas.all_reduce_sum(tokens_.data(), tokens_.size());
}

at::Tensor ExpertHessianSet::hessians(bool fc1) const {
  return (fc1 ? fc1_ : fc2_).to(at::kFloat);
}

LayerGptqResult quantize_layer_gptq(HfMoeModel& model, int layer, const ExpertHessianSet& hessians,
                                    std::map<int, SwiGluWeights>& shards,
                                    const GptqSettings& settings) {
  const SteadyClock::time_point t0 = SteadyClock::now();
  const ModelConfig& c = model.config();
  const parallel::ParallelState& ps = model.parallel_state();
  const QuantFormat format = model.weight_format();
  const MoeExperts m = model.experts(layer);
  LayerGptqResult result;
  std::vector<size_t> solve;  // indices into hessians.experts()
  for (size_t i = 0; i < hessians.experts().size(); ++i) {
    const int e = hessians.experts()[i];
    if (hessians.tokens()[i] >= settings.min_tokens) {
      solve.push_back(i);
      result.solved.push_back(e);
      continue;
    }
    // Too few rows for a well-conditioned H: round to nearest, as the exporter would, and run
    // the next layer from that.
    result.too_few_tokens.push_back(e);
    SwiGluWeights& w = shards.at(e);
    const float a1 = m->linear_fc1->quantizer_for(ps.local_expert(e))->amax_scalar();
    const float a2 = m->linear_fc2->quantizer_for(ps.local_expert(e))->amax_scalar();
    for (auto [t, proj, amax] :
         {std::tuple{&w.gate, ExpertProj::kGate, a1}, std::tuple{&w.up, ExpertProj::kUp, a1},
          std::tuple{&w.down, ExpertProj::kDown, a2}}) {
      const std::string name = c.expert_weight_name(layer, e, proj);
      const auto stored = quantize_weight(*t, format, {amax}, name);
      *t = dequantize_weight(stored, format, t->size(0), t->size(1), name).to(t->device());
    }
  }
  GptqOptions options;
  options.damp = settings.damp;
  options.block = settings.block;
  for (const bool fc1 : {true, false}) {
    const at::Tensor h_all = hessians.hessians(fc1);
    for (size_t begin = 0; begin < solve.size(); begin += kExpertsPerSolve) {
      const size_t end = std::min(solve.size(), begin + kExpertsPerSolve);
      std::vector<int64_t> rows(solve.begin() + static_cast<std::ptrdiff_t>(begin),
                                solve.begin() + static_cast<std::ptrdiff_t>(end));
      std::vector<int> experts;
      for (int64_t i : rows) experts.push_back(hessians.experts()[static_cast<size_t>(i)]);
      const at::Tensor h = h_all.index_select(0, at::tensor(rows, at::kLong).to(h_all.device()));
      const std::vector<float> amax = amax_of(fc1 ? m->linear_fc1 : m->linear_fc2, ps, experts);
      std::vector<std::vector<std::vector<StoredTensor>>> per_proj;
      const std::vector<ExpertProj> projs =
          fc1 ? std::vector<ExpertProj>{ExpertProj::kGate, ExpertProj::kUp}
              : std::vector<ExpertProj>{ExpertProj::kDown};
      for (ExpertProj proj : projs) {
        std::vector<at::Tensor> ws;
        std::vector<std::string> names;
        for (int e : experts) {
          const SwiGluWeights& w = shards.at(e);
          ws.push_back(proj == ExpertProj::kGate ? w.gate
                       : proj == ExpertProj::kUp ? w.up
                                                 : w.down);
          names.push_back(c.expert_weight_name(layer, e, proj));
        }
        const GptqResult r =
            gptq_quantize(at::stack(ws), h.to(ws.front().device()), format, amax, names, options);
        for (size_t k = 0; k < experts.size(); ++k) {
          SwiGluWeights& w = shards.at(experts[k]);
          at::Tensor& slot = proj == ExpertProj::kGate ? w.gate
                             : proj == ExpertProj::kUp ? w.up
                                                       : w.down;
          slot = r.dequantized[static_cast<int64_t>(k)].to(slot.device()).contiguous();
        }
        std::vector<std::vector<StoredTensor>> host;
        for (const std::vector<StoredTensor>& stored : r.stored) {
          std::vector<StoredTensor> h_stored = stored;
          for (StoredTensor& t : h_stored) t.data = t.data.to(at::kCPU).contiguous();
          host.push_back(std::move(h_stored));
        }
        per_proj.push_back(std::move(host));
      }
      for (size_t k = 0; k < experts.size(); ++k) {
        std::vector<std::vector<StoredTensor>> unit;
        for (auto& proj_results : per_proj) unit.push_back(std::move(proj_results[k]));
        model.set_precomputed(layer, experts[k], fc1, std::move(unit));
      }
    }
  }
  result.seconds = seconds_since(t0);
  return result;
}

}  // namespace moequant
