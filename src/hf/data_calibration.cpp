#include "moequant/hf/data_calibration.h"

#include <ATen/ATen.h>

#include <chrono>
#include <map>

#include "moequant/common/error.h"
#include "moequant/hf/decoder_forward.h"
#include "moequant/hf/expert_dispatch.h"

namespace moequant {

namespace {

using Clock = std::chrono::steady_clock;
using parallel::Group;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The samples [begin, end) of slot `slot` of `slots` (the ranks of a stage split them evenly).
struct SampleRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
SampleRange slice(int64_t samples, int slot, int slots) {
  return {samples * slot / slots, samples * (slot + 1) / slots};
}

at::Tensor f32_on(const at::Tensor& view, const at::Device& device) {
  return view.to(device).to(at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

// This rank's ETP shards of its experts of `layer`, float32 on `device`.
std::map<int, SwiGluWeights> load_shards(const HfMoeModel& model, int layer,
                                         const at::Device& device) {
  std::map<int, SwiGluWeights> shards;
  const parallel::IndexRange experts = model.parallel_state().local_experts();
  for (int64_t e = experts.begin; e < experts.end; ++e) {
    const ExpertShard fc1 = model.expert_shard(layer, static_cast<int>(e), true);
    const ExpertShard fc2 = model.expert_shard(layer, static_cast<int>(e), false);
    shards.emplace(
        static_cast<int>(e),
        SwiGluWeights{f32_on(fc1.gate, device), f32_on(fc1.up, device), f32_on(fc2.down, device)});
  }
  return shards;
}

}  // namespace

DataCalibrationReport calibrate_with_data(HfMoeModel& model, const parallel::ProcessGroups& groups,
                                          const CalibrationData& data,
                                          const DataCalibrationOptions& o) {
  const HfMoeConfig& c = model.config();
  const parallel::ParallelState& ps = groups.state();
  const DecoderConfig d = decoder_config(c);
  const at::Device dev(o.device);
  MQ_CHECK(o.batch > 0, "--calib-batch must be positive");
  MQ_CHECK(!data.samples.empty(), "no calibration samples");
  const int64_t T = data.seq_len, n = static_cast<int64_t>(data.samples.size());
  const parallel::DenseCoord me = ps.dense_coord();
  const int tp = ps.sizes().tp, slots = tp * ps.dp(), slot = me.tp + tp * me.dp;
  const SampleRange mine = slice(n, slot, slots);
  // Every rank of the stage runs as many batches as the largest share needs, so that the
  // collectives of the expert dispatch line up (a rank with fewer samples runs empty ones).
  const int64_t batches = (slice(n, 0, slots).size() + o.batch - 1) / o.batch;
  parallel::Communicator& world = groups.world();

  DataCalibrationReport report;
  report.samples = n;
  report.tokens = n * T;
  report.source = data.source;
  Clock::time_point t0 = Clock::now();
  at::Tensor h;  // this rank's hidden states [samples, T, H]
  if (me.pp == 0) {
    std::vector<int64_t> ids;
    for (int64_t s = mine.begin; s < mine.end; ++s)
      ids.insert(ids.end(), data.samples[s].begin(), data.samples[s].end());
    ModelEnds ends;
    ends.embed =
        read_f32(model.checkpoint(), "model.embed_tokens.weight", dev, {d.vocab, d.hidden});
    h = embed_tokens(at::tensor(ids, at::kLong).view({mine.size(), T}), ends, d);
  } else {  // the previous stage's rank of the same slot sends them
    h = at::empty({mine.size(), T, d.hidden}, at::kFloat);
    const int from = ps.dense_rank({me.tp, me.dp, me.pp - 1});
    world.recv(h.data_ptr(), h.nbytes(), from);
    h = h.to(dev);
  }
  report.read_s += seconds_since(t0);

  const RopeTable rope = rope_table(T, d, dev);
  const parallel::IndexRange layers = ps.local_layers();
  std::vector<int64_t> routed(static_cast<size_t>(c.num_layers) * c.num_experts, 0);
  const size_t steps = static_cast<size_t>(layers.size() * batches);
  size_t step = 0;
  for (int layer = static_cast<int>(layers.begin); layer < layers.end; ++layer) {
    t0 = Clock::now();
    const DecoderLayerWeights w = read_layer_weights(model.checkpoint(), c, d, layer, dev);
    std::unique_ptr<DispatchedExperts> experts;
    if (c.is_moe_layer(layer)) {
      report.weights_observed += model.calibrate_layer_weights(layer);  // the same pass
      const MoeExperts m = model.experts(layer);
      auto observe = [&, m, layer](int e, bool fc1, const at::Tensor& input) {
        const GroupedLinear g = fc1 ? m->linear_fc1 : m->linear_fc2;
        const auto q = g->input_quantizer_for(ps.local_expert(e));
        const std::string what =
            c.expert_module_name(layer, e, fc1 ? ExpertProj::kGate : ExpertProj::kDown) + " input";
        q->observe(input, what);
        if (q != g->input_quantizer) g->input_quantizer->observe(input, what);
        if (fc1) routed[static_cast<size_t>(layer) * c.num_experts + e] += input.size(0);
      };
      experts = std::make_unique<DispatchedExperts>(groups, c.num_experts,
                                                    load_shards(model, layer, dev), observe);
    }
    report.read_s += seconds_since(t0);
    t0 = Clock::now();
    std::vector<at::Tensor> outs;
    for (int64_t b = 0; b < batches; ++b) {
      const int64_t begin = std::min(b * o.batch, mine.size());
      const int64_t end = std::min(begin + o.batch, mine.size());
      outs.push_back(decoder_layer(h.narrow(0, begin, end - begin), w, d, rope, experts.get()));
      if (o.progress && world.rank() == 0) o.progress(++step, steps);
    }
    h = at::cat(outs, 0);
    report.forward_s += seconds_since(t0);
  }
  if (me.pp + 1 < ps.sizes().pp) {
    const at::Tensor host = h.to(at::kCPU).contiguous();
    world.send(host.data_ptr(), host.nbytes(), ps.dense_rank({me.tp, me.dp, me.pp + 1}));
  }

  // The experts no token reached, over every rank (each counted what its experts saw).
  world.all_reduce_sum(routed.data(), routed.size());
  for (int layer : c.moe_layers)
    for (int e = 0; e < c.num_experts; ++e)
      if (routed[static_cast<size_t>(layer) * c.num_experts + e] == 0)
        report.experts_without_tokens.push_back("layer " + std::to_string(layer) + " expert " +
                                                std::to_string(e));
  return report;
}

}  // namespace moequant
