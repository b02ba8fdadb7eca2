#include "moequant/hf/data_calibration.h"

#include <ATen/ATen.h>

#include <chrono>
#include <future>
#include <map>

#include "moequant/calib/quantizer_sync.h"
#include "moequant/common/error.h"
#include "moequant/common/stopwatch.h"
#include "moequant/core/multi_amax.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/forward/decoder_forward.h"
#include "moequant/forward/expert_dispatch.h"
#include "moequant/forward/gpt_oss_ops.h"

namespace moequant {

namespace {

using Clock = SteadyClock;

using parallel::Group;

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
std::map<int, SwiGluWeights> load_shards(const HfMoeModel& model, const DecoderConfig& d, int layer,
                                         const at::Device& device) {
  std::map<int, SwiGluWeights> shards;
  const parallel::IndexRange experts = model.parallel_state().local_experts();
  const parallel::IndexRange r =
      model.parallel_state().local_etp_shard(model.config().intermediate);
  for (int64_t e = experts.begin; e < experts.end; ++e) {
    const ExpertShard fc1 = model.expert_shard(layer, static_cast<int>(e), true);
    const ExpertShard fc2 = model.expert_shard(layer, static_cast<int>(e), false);
    SwiGluWeights w;
    w.gate = f32_on(fc1.gate, device);
    w.up = f32_on(fc1.up, device);
    w.down = f32_on(fc2.down, device);
    // GPT-OSS's biases (the down bias on the first ETP shard only: partial sums are added).
    add_expert_extras(w, model.checkpoint(), model.config(), d, layer, static_cast<int>(e), r.begin,
                      r.end, r.begin == 0, device);
    shards.emplace(static_cast<int>(e), std::move(w));
    // Copied: the mapped source pages need not stay in this process's memory.
    model.release_expert(layer, static_cast<int>(e), true);
    model.release_expert(layer, static_cast<int>(e), false);
  }
  return shards;
}

// What the forward of one layer needs, read by a loader thread while the previous layer runs.
struct LoadedLayer {
  DecoderLayerWeights weights;
  std::map<int, SwiGluWeights> experts;  // this rank's shards, float32 on the device
  size_t weights_observed = 0;           // weight quantizers calibrated from the same pages
  double read_s = 0;
};

// Reads `layer` on its own stream: the dense weights and this rank's expert shards, whose weight
// amax is then observed from those copies (on the GPU with one launch, not on the host cores the
// forward's launches need; float32 holds every bf16/fp16 value exactly, so the amax is the same).
LoadedLayer load_layer(HfMoeModel& model, const DecoderConfig& d, int layer,
                       const std::string& device) {
  const Clock::time_point t0 = Clock::now();
  ThreadStream stream(device);
  const at::Device dev(device);
  LoadedLayer out;
  out.weights = read_layer_weights(model.checkpoint(), model.config(), d, layer, dev);
  out.weights_observed += model.calibrate_dense_weights(layer);
  if (model.config().is_moe_layer(layer)) {
    out.experts = load_shards(model, d, layer, dev);
    out.weights_observed += model.calibrate_layer_weights(layer, [&](int e, bool fc1) {
      const SwiGluWeights& w = out.experts.at(e);
      ExpertShard s;
      if (fc1) {
        s.gate = w.gate;
        s.up = w.up;
      } else {
        s.down = w.down;
      }
      return s;
    });
  }
  stream.synchronize();  // the copies are done before another thread's stream reads them
  out.read_s = seconds_since(t0);
  return out;
}

// Tokens of one MoE call at least: the experts see many batches' tokens at once (fewer, larger
// GEMMs; one amax launch per call) while the activations of a call stay bounded.
constexpr int64_t kMoeTokens = 16384;

// The input quantizers of one MoE layer, observed in batches: every expert input of a MoE call
// is kept (on its device) and reduced by ONE multi_amax launch when the call ends, instead of a
// reduction and a host round trip per expert and projection.
class LayerInputObserver {
 public:
  LayerInputObserver(const ModelConfig& c, const parallel::ParallelState& ps, const MoeExperts& m,
                     int layer, std::vector<int64_t>& routed, ExpertHessianSet* hessians)
      : c_(c), ps_(ps), m_(m), layer_(layer), routed_(routed), hessians_(hessians) {}

  void observe(int e, bool fc1, const at::Tensor& input) {
    if (input.numel() == 0) return;
    if (hessians_) hessians_->add(e, fc1, input);
    if (fc1) routed_[static_cast<size_t>(layer_) * c_.num_experts + e] += input.size(0);
    const auto q = quantizer(e, fc1);
    const std::string what =
        c_.expert_module_name(layer_, e, fc1 ? ExpertProj::kGate : ExpertProj::kDown) + " input";
    if (q->axis() == AmaxAxis::kPerChannel) {  // rare: one value per row, observed at once
      q->observe(input, what);
      return;
    }
    tasks_.push_back({input, false, tasks_.size(), what + " (quantizer '" + q->name() + "')"});
    owners_.push_back({e, fc1});
  }

  // Reduces what the last call observed and merges it into the quantizers (per-expert ones and
  // the shared one of their grouped linear).
  void flush() {
    if (tasks_.empty()) return;
    std::vector<float> slots(tasks_.size(), 0.0f);
    multi_amax(tasks_, slots);
    for (size_t i = 0; i < slots.size(); ++i) {
      const auto [e, fc1] = owners_[i];
      const auto q = quantizer(e, fc1);
      q->merge_amax(&slots[i], 1);
      const auto& shared = (fc1 ? m_->linear_fc1 : m_->linear_fc2)->input_quantizer;
      if (q != shared) shared->merge_amax(&slots[i], 1);
    }
    tasks_.clear();
    owners_.clear();
  }

 private:
  std::shared_ptr<TensorQuantizer> quantizer(int e, bool fc1) const {
    const GroupedLinear g = fc1 ? m_->linear_fc1 : m_->linear_fc2;
    return g->input_quantizer_for(ps_.local_expert(e));
  }

  const ModelConfig& c_;
  const parallel::ParallelState& ps_;
  const MoeExperts m_;
  const int layer_;
  std::vector<int64_t>& routed_;
  ExpertHessianSet* hessians_;  // GPTQ: every observed row also goes into its expert's H
  std::vector<AmaxTask> tasks_;
  std::vector<std::pair<int, bool>> owners_;
};

}  // namespace

DataCalibrationReport calibrate_with_data(HfMoeModel& model, const parallel::ProcessGroups& groups,
                                          const CalibrationData& data,
                                          const DataCalibrationOptions& o) {
  const ModelConfig& c = model.config();
  const parallel::ParallelState& ps = groups.state();
  const DecoderConfig d = decoder_config(c);
  const at::Device dev(o.device);
  MQ_CHECK(o.batch > 0, "--calib-batch must be positive");
  MQ_CHECK(!data.samples.empty(), "no calibration samples");
  const int64_t T = data.seq_len, n = static_cast<int64_t>(data.samples.size());
  const parallel::DenseCoord me = ps.dense_coord();
  const int slots = ps.stage_data_slots();
  const SampleRange mine = slice(n, ps.stage_data_slot(), slots);
  // Every rank of the stage runs as many batches as the largest share needs, so that the
  // collectives of the expert dispatch line up (a rank with fewer samples runs empty ones, and a
  // rank with none, when there are fewer samples than ranks, takes part with nothing).
  const int64_t largest = (n + slots - 1) / slots;
  const int64_t batches = (largest + o.batch - 1) / o.batch;
  // The MoE block runs over several attention batches at once (kMoeTokens), in as many calls on
  // every rank of the stage.
  const int64_t moe_samples = std::max(o.batch, (kMoeTokens + T - 1) / T);
  const int64_t moe_calls = (largest + moe_samples - 1) / moe_samples;
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
    const int from = ps.stage_peer(-1);
    world.recv(h.data_ptr(), h.nbytes(), from);
    h = h.to(dev);
  }
  report.read_s += seconds_since(t0);

  const RopeTable rope = rope_table(T, d.rope, dev);
  const parallel::IndexRange layers = ps.local_layers();
  std::vector<int64_t> routed(static_cast<size_t>(c.num_layers) * c.num_experts, 0);
  std::vector<int64_t> too_few(routed.size(), 0);  // GPTQ: experts rounded to nearest instead
  auto load = [&](int layer) {
    return std::async(std::launch::async, load_layer, std::ref(model), std::cref(d), layer,
                      o.device);
  };
  std::future<LoadedLayer> next;
  if (layers.size() > 0) next = load(static_cast<int>(layers.begin));
  for (int layer = static_cast<int>(layers.begin); layer < layers.end; ++layer) {
    t0 = Clock::now();
    LoadedLayer loaded = next.get();                     // rethrows the loader's error
    if (layer + 1 < layers.end) next = load(layer + 1);  // read ahead while this layer runs
    report.read_s += loaded.read_s;
    report.read_wait_s += seconds_since(t0);
    report.weights_observed += loaded.weights_observed;
    const DecoderLayerWeights& w = loaded.weights;
    std::unique_ptr<DispatchedExperts> experts;
    std::unique_ptr<LayerInputObserver> inputs;
    std::unique_ptr<ExpertHessianSet> hessians;
    if (c.is_moe_layer(layer) && o.gptq.enabled) {
      std::vector<int> local;
      for (const auto& [e, w] : loaded.experts) local.push_back(e);
      hessians =
          std::make_unique<ExpertHessianSet>(std::move(local), c.hidden, c.intermediate, dev);
    }
    if (c.is_moe_layer(layer)) {
      inputs = std::make_unique<LayerInputObserver>(c, ps, model.experts(layer), layer, routed,
                                                    hessians.get());
      experts = std::make_unique<DispatchedExperts>(
          groups, c.num_experts, std::move(loaded.experts),
          [obs = inputs.get()](int e, bool fc1, const at::Tensor& x) { obs->observe(e, fc1, x); });
      if (o.all_experts) experts->observe_all_tokens([obs = inputs.get()] { obs->flush(); });
    }
    t0 = Clock::now();
    const ForwardHooks hooks = model.calibration_hooks(layer);  // dense inputs, KV cache
    std::vector<at::Tensor> attended;
    for (int64_t b = 0; b < batches; ++b) {
      const int64_t begin = std::min(b * o.batch, mine.size());
      const int64_t end = std::min(begin + o.batch, mine.size());
      attended.push_back(attention_block(h.narrow(0, begin, end - begin), w, d, rope, hooks));
    }
    h = at::cat(attended, 0);
    attended.clear();
    std::vector<at::Tensor> outs;
    for (int64_t k = 0; k < moe_calls; ++k) {
      const int64_t begin = std::min(k * moe_samples, mine.size());
      const int64_t end = std::min(begin + moe_samples, mine.size());
      outs.push_back(mlp_block(h.narrow(0, begin, end - begin), w, d, experts.get(), hooks));
      if (inputs) inputs->flush();
    }
    if (hessians) {
      // GPTQ: H summed over the experts' data-parallel replicas, the layer's weight amax made
      // final (one amax for all its experts: nvfp4's weight_scale_2 depends on it), every local
      // expert solved; then the layer's MoE output again, from the quantized experts, so that
      // the next layer sees what the quantized model computes (GPTQ's sequential mode). Only
      // collectives inside this stage: the other stages are elsewhere in their own layers.
      hessians->all_reduce(groups.get(Group::kEDP));
      sync_weight_amax_in_stage(*model.experts(layer), groups);
      const LayerGptqResult g =
          quantize_layer_gptq(model, layer, *hessians, experts->shards(), o.gptq);
      hessians.reset();
      report.gptq_solved += g.solved.size();
      report.gptq_s += g.seconds;
      for (int e : g.too_few_tokens) too_few[static_cast<size_t>(layer) * c.num_experts + e] = 1;
      experts->stop_observing();
      outs.clear();
      for (int64_t k = 0; k < moe_calls; ++k) {
        const int64_t begin = std::min(k * moe_samples, mine.size());
        const int64_t end = std::min(begin + moe_samples, mine.size());
        outs.push_back(mlp_block(h.narrow(0, begin, end - begin), w, d, experts.get()));
      }
    }
    h = at::cat(outs, 0);
    report.forward_s += seconds_since(t0);
    if (o.progress && world.rank() == 0) o.progress(layer + 1 - layers.begin, layers.size());
  }
  if (me.pp + 1 < ps.sizes().pp) {
    const at::Tensor host = h.to(at::kCPU).contiguous();
    world.send(host.data_ptr(), host.nbytes(), ps.stage_peer(+1));
  }

  // The experts no token reached, over every rank (each counted what its experts saw).
  world.all_reduce_sum(routed.data(), routed.size());
  if (o.gptq.enabled) {
    world.all_reduce_max(too_few.data(), too_few.size());
    for (int layer : c.moe_layers)
      for (int e = 0; e < c.num_experts; ++e)
        if (too_few[static_cast<size_t>(layer) * c.num_experts + e])
          report.gptq_too_few_tokens.push_back("layer " + std::to_string(layer) + " expert " +
                                               std::to_string(e));
  }
  for (int layer : c.moe_layers)
    for (int e = 0; e < c.num_experts; ++e)
      if (routed[static_cast<size_t>(layer) * c.num_experts + e] == 0)
        report.experts_without_tokens.push_back("layer " + std::to_string(layer) + " expert " +
                                                std::to_string(e));
  return report;
}

}  // namespace moequant
