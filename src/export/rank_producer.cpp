#include "rank_producer.h"

#include <ATen/ATen.h>
#include <omp.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include "batched_units.h"
#include "moequant/common/error.h"
#include "moequant/common/stopwatch.h"
#include "moequant/common/work_queue.h"
#include "moequant/core/nvfp4_from_e2m1.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/export/scale_checks.h"
#include "moequant/io/placed_file.h"
#include "moequant/parallel/error_agreement.h"
#include "unit_producer.h"

namespace moequant::export_detail {

namespace {

using Clock = SteadyClock;

constexpr size_t kNone = std::numeric_limits<size_t>::max();

struct WorkItem {
  size_t tensor = kNone;            // a passthrough tensor (index into plan.tensors), or
  size_t unit = kNone;              // an expert unit (index into plan.units), or
  std::vector<size_t> batch;        // units of one layer quantized by one GPU launch
  std::vector<ExpertShard> shards;  // the unit's gathered ETP shards; empty: read here
};

// Input bytes of one GPU batch at most: a layer's experts in several launches, each far from
// launch-bound (a Qwen3-30B expert is 6 MB), with a bounded staging buffer per producer thread.
constexpr uint64_t kBatchBytes = 256ull << 20;
// Producer threads on a GPU: each holds a stream and its staging buffers; the host side of a
// batch (reading, writing) is most of its time, so several overlap one GPU.
constexpr int kMaxGpuThreads = 8;

struct ThreadStats {
  double read_s = 0, quantize_s = 0, write_s = 0;
  uint64_t bytes = 0;
  int64_t e2m1_blocks = 0, e2m1_requantized_blocks = 0;
};

uint64_t peak_rss_bytes() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

// At most one producer thread per tensor this rank writes: more would have nothing to do.
int tensors_produced_by(const ExportPlan& plan, int rank) {
  int n = 0;
  for (const PlannedTensor& t : plan.tensors) n += t.producer == rank;
  return std::max(1, n);
}

// Whether the expert units are nvfp4 of E2M1-coded experts (an MXFP4 source): those are cast
// on the CPU (RankProducer::keeps_e2m1), so a CUDA run is not limited to the GPU's few producer
// threads.
bool casts_e2m1_units(const ExportPlan& plan, const ExportSource& source) {
  if (!source.experts_are_e2m1_coded()) return false;
  for (const PlannedUnit& u : plan.units)
    if (!u.dense && u.format == QuantFormat::kNVFP4) return true;
  return false;
}

class RankProducer {
 public:
  RankProducer(const ModelConfig& config, const parallel::ParallelState& ps,
               parallel::Communicator& world, const ExportSource& source,
               const ExportOptions& options, const ExportPlan& plan, const std::string& dir,
               int threads)
      : config_(config),
        ps_(ps),
        world_(world),
        source_(source),
        options_(options),
        plan_(plan),
        dir_(dir),
        me_(world.rank()),
        batched_(at::Device(options.device).is_cuda() && ps.sizes().etp == 1 &&
                 !casts_e2m1_units(plan, source)),
        threads_(std::min(
            batched_ ? std::max(1, std::min(threads, kMaxGpuThreads)) : std::max(1, threads),
            tensors_produced_by(plan, world.rank()))),
        queue_(2 * static_cast<size_t>(threads_)),
        stats_(static_cast<size_t>(threads_)),
        shard_type_(storage_scalar_type(source.expert_dtype())) {}

  RankShare run() {
    record([&] { open_files(); });
    std::vector<std::thread> workers;
    // A thread that cannot start (a process or memory limit) is this rank's error, agreed and
    // cleaned up like any other; the plan is still walked so that no peer waits for a shard.
    record([&] {
      for (int i = 0; i < threads_; ++i) {
        try {
          workers.emplace_back([this, i] { work(i); });
        } catch (const std::exception& e) {  // std::system_error, or bad_alloc for its state
          MQ_THROW("cannot start producer thread ", i + 1, " of ", threads_, ": ", e.what(),
                   " (lower --threads, or raise the process's thread or memory limit)");
        }
      }
    });
    try {
      walk_plan();
    } catch (...) {
      queue_.close();
      for (std::thread& t : workers) t.join();
      throw;  // a transfer failed: the peer is gone, the caller ends the job
    }
    queue_.close();
    for (std::thread& t : workers) t.join();
    const Clock::time_point synced = Clock::now();
    record([&] {
      for (auto& [index, file] : files_) file.finish(options_.durable);
    });
    const double sync_s = seconds_since(synced);
    RankShare out;
    out.written = std::move(written_);
    out.fallbacks = std::move(fallbacks_);
    out.error = error_;
    out.stats.rank = me_;
    out.stats.threads = threads_;
    out.stats.wait_s = wait_s_;
    out.stats.sync_s = sync_s;
    for (const ThreadStats& s : stats_) {
      out.stats.read_s += s.read_s;
      out.stats.quantize_s += s.quantize_s;
      out.stats.write_s += s.write_s;
      out.stats.bytes_written += s.bytes;
      out.stats.e2m1_blocks += s.e2m1_blocks;
      out.stats.e2m1_requantized_blocks += s.e2m1_requantized_blocks;
    }
    out.stats.peak_rss_bytes = peak_rss_bytes();
    return out;
  }

 private:
  // The world rank holding ETP shard `etp` of a unit, in the EDP replica that produces it.
  int holder(const PlannedUnit& u, int etp) const {
    return ps_.expert_unit_rank(u.layer, u.expert, etp);
  }

  void open_files() {
    for (const PlannedTensor& t : plan_.tensors) {
      if (t.producer != me_ || files_.count(t.file)) continue;
      const PlannedFile& f = plan_.files[t.file];
      files_.emplace(t.file, io::PlacedFile(dir_ + "/" + f.name, f.size()));
    }
    for (const PlannedTensor& t : plan_.tensors)
      if (t.producer == me_) my_bytes_ += t.nbytes;
  }

  // The main thread: the plan in order. Passthrough tensors and this rank's units go to the
  // producer threads; ETP shards travel to their producer in the same global order on every
  // rank, so the transfers cannot deadlock, and they go on after a local failure so that no peer
  // waits for a shard that never comes.
  void walk_plan() {
    const int etp = ps_.sizes().etp;
    std::vector<size_t> unit_starting_at(plan_.tensors.size(), kNone);
    for (size_t k = 0; k < plan_.units.size(); ++k)
      unit_starting_at[plan_.units[k].tensors.front()] = k;
    WorkItem batch;  // GPU: units of one layer and side gathered into one launch
    uint64_t batch_bytes = 0;
    auto flush = [&] {
      if (!batch.batch.empty()) push(std::move(batch));
      batch = WorkItem{};
      batch_bytes = 0;
    };
    for (size_t i : walk_order(unit_starting_at)) {
      const PlannedTensor& t = plan_.tensors[i];
      if (t.source == TensorSource::kPassthrough || t.source == TensorSource::kKvScale) {
        if (t.producer == me_) push({i, kNone, {}, {}});
        continue;
      }
      const size_t unit = unit_starting_at[i];
      if (unit == kNone) continue;  // not the first tensor of a unit
      const PlannedUnit& u = plan_.units[unit];
      if (u.dense) {  // read whole by its producer: nothing travels
        if (u.producer == me_) push({kNone, unit, {}, {}});
        continue;
      }
      if (etp == 1) {
        if (u.producer != me_) continue;
        source_.prefetch_expert(u.layer, u.expert, u.fc1);
        const bool quantized = plan_.tensors[u.tensors.front()].format != QuantFormat::kNone;
        if (!batched_ || !quantized || precomputed(u) || keeps_e2m1(u)) {
          push({kNone, unit, {}, {}});
          continue;
        }
        const uint64_t bytes = unit_input_bytes(u);
        if (!batch.batch.empty()) {
          const PlannedUnit& first = plan_.units[batch.batch.front()];
          if (first.layer != u.layer || first.fc1 != u.fc1 || batch_bytes + bytes > kBatchBytes)
            flush();
        }
        batch.batch.push_back(unit);
        batch_bytes += bytes;
        continue;
      }
      int my_etp = -1;
      for (int r = 0; r < etp; ++r)
        if (holder(u, r) == me_) my_etp = r;
      if (my_etp < 0) continue;
      const Clock::time_point t0 = Clock::now();
      if (my_etp == 0) {
        WorkItem item{kNone, unit, {}, {}};
        item.shards.push_back(local_shard_or_empty(u));
        for (int r = 1; r < etp; ++r) item.shards.push_back(receive_shard(u, holder(u, r)));
        wait_s_ += seconds_since(t0);
        push(std::move(item));
      } else {
        send_shard(u, holder(u, 0));
        wait_s_ += seconds_since(t0);
      }
    }
    flush();
  }

  // The plan's tensors in rounds over the files: each round takes from every file in turn its
  // next item (a passthrough tensor, or a unit with its tensors), on a GPU its next batch's worth
  // (kBatchBytes, so that batches stay whole). Buffered writes into one file take turns on its
  // inode lock (ext4, XFS), so producer threads writing different files copy in parallel: a
  // file-by-file walk left 16 threads queued on one file. The rounds start at a file that
  // depends on this rank's ETP group, so ranks too begin in different files, while the ETP
  // peers of a unit, one group, walk one order and transfer in step.
  std::vector<size_t> walk_order(const std::vector<size_t>& unit_starting_at) const {
    const size_t groups = ps_.all_groups(parallel::Group::kETP).size();
    const size_t group = static_cast<size_t>(ps_.group_index(parallel::Group::kETP));
    const size_t files = plan_.files.size();
    const size_t start = files == 0 ? 0 : group * files / groups;
    const uint64_t round_bytes = batched_ ? kBatchBytes : 1;
    auto starts_item = [&](size_t i) {
      const TensorSource src = plan_.tensors[i].source;
      return src == TensorSource::kPassthrough || src == TensorSource::kKvScale ||
             unit_starting_at[i] != kNone;
    };
    std::vector<size_t> next(files);  // each file's next tensor
    for (size_t f = 0; f < files; ++f) next[f] = plan_.files[f].first;
    std::vector<size_t> order;
    order.reserve(plan_.tensors.size());
    for (bool more = true; more;) {
      more = false;
      for (size_t k = 0; k < files; ++k) {
        const size_t f = (start + k) % files;
        const size_t last = plan_.files[f].last;
        uint64_t bytes = 0;
        // Whole items until the round's bytes are reached (at least one).
        while (next[f] <= last && bytes < round_bytes) {
          do {
            bytes += plan_.tensors[next[f]].nbytes;
            order.push_back(next[f]++);
          } while (next[f] <= last && !starts_item(next[f]));
        }
        more = more || next[f] <= last;
      }
    }
    return order;
  }

  // Bytes of a unit's full weights in the source dtype (fc1: gate and up).
  uint64_t unit_input_bytes(const PlannedUnit& u) const {
    return static_cast<uint64_t>((u.fc1 ? 2 : 1) * config_.hidden * config_.intermediate *
                                 dtype_size(source_.expert_dtype()));
  }

  void push(WorkItem item) {
    if (failed_) return;  // drain: nothing more is produced here after a failure
    const Clock::time_point t0 = Clock::now();
    queue_.push(std::move(item));
    wait_s_ += seconds_since(t0);
  }

  // This rank's own shard, on the host (a failure reading it is recorded, an empty shard kept so
  // that the transfers stay in step).
  ExpertShard local_shard_or_empty(const PlannedUnit& u) {
    ExpertShard s;
    record([&] { s = source_.expert_shard(u.layer, u.expert, u.fc1); });
    return s;
  }

  std::vector<int64_t> shard_shape(bool fc1) const {
    const int64_t local_i = ps_.local_etp_shard(config_.intermediate).size();
    return fc1 ? std::vector<int64_t>{local_i, config_.hidden}
               : std::vector<int64_t>{config_.hidden, local_i};
  }

  void send_shard(const PlannedUnit& u, int producer) {
    ExpertShard s = local_shard_or_empty(u);
    const std::vector<int64_t> shape = shard_shape(u.fc1);
    std::vector<at::Tensor> parts =
        u.fc1 ? std::vector<at::Tensor>{s.gate, s.up} : std::vector<at::Tensor>{s.down};
    for (at::Tensor& p : parts) {
      at::Tensor host = p.defined() && p.sizes().vec() == shape
                            ? p.to(at::kCPU).contiguous()
                            : at::zeros(shape, at::TensorOptions().dtype(shard_type_));
      world_.send(host.data_ptr(), host.nbytes(), producer);
    }
    source_.release_expert(u.layer, u.expert, u.fc1);
  }

  ExpertShard receive_shard(const PlannedUnit& u, int holder_rank) {
    const std::vector<int64_t> shape = shard_shape(u.fc1);
    auto receive = [&] {
      at::Tensor t = at::empty(shape, at::TensorOptions().dtype(shard_type_));
      world_.recv(t.data_ptr(), t.nbytes(), holder_rank);
      return t;
    };
    ExpertShard s;
    if (u.fc1) {
      s.gate = receive();
      s.up = receive();
    } else {
      s.down = receive();
    }
    return s;
  }

  void work(int id) {
    omp_set_num_threads(1);  // the threads are the parallelism: no nested OpenMP teams
    ThreadStream stream(options_.device);
    while (std::optional<WorkItem> item = queue_.pop()) {
      if (failed_) continue;
      record([&] {
        if (!item->batch.empty())
          produce_batch(item->batch, stats_[id]);
        else if (item->unit != kNone && plan_.units[item->unit].dense)
          produce_dense_unit(plan_.units[item->unit], stats_[id]);
        else if (item->unit != kNone)
          produce_unit(*item, stats_[id]);
        else if (plan_.tensors[item->tensor].source == TensorSource::kKvScale)
          produce_kv_scale(item->tensor, stats_[id]);
        else
          produce_passthrough(item->tensor, stats_[id]);
      });
    }
  }

  void write(const PlannedTensor& t, const void* bytes, ThreadStats& st) {
    const Clock::time_point t0 = Clock::now();
    files_.at(t.file).write_at(t.offset, bytes, t.nbytes);
    st.write_s += seconds_since(t0);
    st.bytes += t.nbytes;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      written_.push_back(t.name);
    }
    const uint64_t done = done_bytes_ += t.nbytes;
    if (me_ == 0 && options_.progress) {
      std::lock_guard<std::mutex> lock(mutex_);
      options_.progress(done, my_bytes_);
    }
  }

  void produce_passthrough(size_t index, ThreadStats& st) {
    const PlannedTensor& t = plan_.tensors[index];
    const at::Tensor data = source_.passthrough_data(t.source_name);
    MQ_CHECK(static_cast<uint64_t>(data.nbytes()) == t.nbytes && data.is_contiguous(),
             "internal: passthrough '", t.name, "' holds ", data.nbytes(), " bytes, planned ",
             t.nbytes);
    write(t, data.data_ptr(), st);
    source_.release_passthrough(t.source_name);
  }

  // The amax a unit is quantized with (its quantizers', or the fallbacks of weight_amax.h and
  // unit_input_amax).
  UnitAmax amax_of(const PlannedUnit& u, const std::vector<at::Tensor>& weights) {
    UnitAmax amax;
    if (plan_.tensors[u.tensors.front()].format == QuantFormat::kNone) return amax;
    const auto q = source_.weight_quantizer(u.layer, u.expert, u.fc1);
    bool fell_back = false;
    amax.weight = resolve_weight_amax(
        *q,
        config_.expert_module_name(u.layer, u.expert,
                                   u.fc1 ? ExpertProj::kGate : ExpertProj::kDown),
        "its weight", options_.uncalibrated_weights,
        [&] {
          float m = 0.0f;
          for (const at::Tensor& w : weights)
            m = std::max(m, w.abs().max().to(at::kFloat).item<float>());
          return m;
        },
        &fell_back);
    if (fell_back) note_fallback(q->name() + " (weight)");
    if (plan_.scheme.static_activations) {
      amax.input = unit_input_amax(source_, u, &fell_back);
      if (fell_back)
        note_fallback(source_.input_quantizer(u.layer, u.expert, u.fc1)->name() + " (input)");
    }
    return amax;
  }

  // A unit the source already quantized (GPTQ during calibration), or nullptr.
  const std::vector<std::vector<StoredTensor>>* precomputed(const PlannedUnit& u) const {
    if (u.dense || u.format == QuantFormat::kNone) return nullptr;
    return source_.precomputed_unit(u.layer, u.expert, u.fc1);
  }

  void produce_unit(const WorkItem& item, ThreadStats& st) {
    const PlannedUnit& u = plan_.units[item.unit];
    if (const auto* stored = precomputed(u)) {
      produce_precomputed(u, *stored, st);
      return;
    }
    Clock::time_point t0 = Clock::now();
    std::vector<ExpertShard> shards = item.shards;
    if (shards.empty()) shards.push_back(source_.expert_shard(u.layer, u.expert, u.fc1));
    const std::vector<at::Tensor> weights = assemble_unit(shards, u.fc1);
    const UnitAmax amax = amax_of(u, weights);
    st.read_s += seconds_since(t0);
    t0 = Clock::now();
    const std::vector<at::Tensor> bytes =
        keeps_e2m1(u) ? quantize_keeping_e2m1(u, weights, amax, st)
                      : quantize_unit(plan_, u, weights, amax, options_.device);
    st.quantize_s += seconds_since(t0);
    for (size_t k = 0; k < u.tensors.size(); ++k)
      write(plan_.tensors[u.tensors[k]], bytes[k].data_ptr(), st);
    source_.release_expert(u.layer, u.expert, u.fc1);
  }

  // An nvfp4 unit of E2M1-coded experts (an MXFP4 source): its codes kept where the block scale
  // fits e4m3 (core/nvfp4_from_e2m1.h), on the CPU whatever the device (a byte-level cast; CPU
  // and CUDA runs write the same bytes).
  bool keeps_e2m1(const PlannedUnit& u) const {
    return !u.dense && u.format == QuantFormat::kNVFP4 && source_.experts_are_e2m1_coded();
  }
  std::vector<at::Tensor> quantize_keeping_e2m1(const PlannedUnit& u,
                                                const std::vector<at::Tensor>& weights,
                                                const UnitAmax& amax, ThreadStats& st) {
    std::vector<std::vector<StoredTensor>> stored;
    for (size_t w = 0; w < weights.size(); ++w) {
      Nvfp4FromE2m1 r = quantize_nvfp4_keeping_e2m1(weights[w], amax.weight.at(0), u.weights.at(w));
      st.e2m1_blocks += r.blocks;
      st.e2m1_requantized_blocks += r.requantized;
      stored.push_back(std::move(r.stored));
    }
    return finish_unit(plan_, u, stored, amax.input);
  }

  // A unit whose codes the source holds (GPTQ): its stored tensors, checked against the plan and
  // written with the input scale of a static scheme.
  void produce_precomputed(const PlannedUnit& u,
                           const std::vector<std::vector<StoredTensor>>& stored, ThreadStats& st) {
    const Clock::time_point t0 = Clock::now();
    float input = -1.0f;
    if (plan_.scheme.static_activations) {
      bool fell_back = false;
      input = unit_input_amax(source_, u, &fell_back);
      if (fell_back)
        note_fallback(source_.input_quantizer(u.layer, u.expert, u.fc1)->name() + " (input)");
    }
    const std::vector<at::Tensor> bytes = finish_unit(plan_, u, stored, input);
    st.quantize_s += seconds_since(t0);
    for (size_t k = 0; k < u.tensors.size(); ++k)
      write(plan_.tensors[u.tensors[k]], bytes[k].data_ptr(), st);
  }

  // A dense linear (--quantize all-linear): its whole weight, quantized with the amax its fusion
  // group shares (q/k/v, gate/up: one scale, as the engines load them).
  void produce_dense_unit(const PlannedUnit& u, ThreadStats& st) {
    Clock::time_point t0 = Clock::now();
    const DenseLinear& l = *u.dense;
    const at::Tensor weight = source_.dense_weight(l);
    UnitAmax amax;
    const auto wq = source_.dense_weight_quantizer(u.layer, l.group);
    MQ_CHECK(wq->is_calibrated(), "weight quantizer '", wq->name(), "' of ", l.module,
             " observed no weight: was the source calibrated with --quantize all-linear?");
    amax.weight = wq->amax();
    if (plan_.scheme.static_activations) {
      const auto iq = source_.dense_input_quantizer(u.layer, l.group);
      MQ_CHECK(iq->is_calibrated(), "input quantizer '", iq->name(), "' of ", l.module,
               " saw no tokens: its input_scale would be missing");
      amax.input = iq->amax_scalar();
      MQ_CHECK(amax.input > 0.0f && std::isfinite(amax.input), "input quantizer '", iq->name(),
               "' has amax ", amax.input, ": its input_scale would load as 1/0 = NaN");
    }
    st.read_s += seconds_since(t0);
    t0 = Clock::now();
    const std::vector<at::Tensor> bytes = quantize_unit(plan_, u, {weight}, amax, options_.device);
    st.quantize_s += seconds_since(t0);
    for (size_t k = 0; k < u.tensors.size(); ++k)
      write(plan_.tensors[u.tensors[k]], bytes[k].data_ptr(), st);
    source_.release_passthrough(l.weight);
  }

  // An attention layer's k_scale or v_scale: the amax of what its KV cache holds / 448
  // (docs/formats.md, "KV-cache scales").
  void produce_kv_scale(size_t index, ThreadStats& st) {
    const PlannedTensor& t = plan_.tensors[index];
    const auto q = source_.kv_cache_quantizer(t.layer, t.suffix == "k_scale");
    MQ_CHECK(q->is_calibrated(), "KV-cache quantizer '", q->name(), "' saw no tokens: '", t.name,
             "' would be missing");
    const float scale = q->amax_scalar() / 448.0f;
    check_scale_tensor(t.name, DType::kF32, at::full({}, scale, at::kFloat));
    write(t, &scale, st);
  }

  // A GPU batch: every unit read, all quantized by one launch, each written into place.
  void produce_batch(const std::vector<size_t>& batch, ThreadStats& st) {
    Clock::time_point t0 = Clock::now();
    std::vector<std::vector<at::Tensor>> weights;
    std::vector<UnitAmax> amax;
    for (size_t index : batch) {
      const PlannedUnit& u = plan_.units[index];
      weights.push_back(assemble_unit({source_.expert_shard(u.layer, u.expert, u.fc1)}, u.fc1));
      amax.push_back(amax_of(u, weights.back()));
    }
    st.read_s += seconds_since(t0);
    t0 = Clock::now();
    const std::vector<std::vector<at::Tensor>> bytes =
        quantize_units_batched(plan_, batch, weights, amax, options_.device);
    st.quantize_s += seconds_since(t0);
    for (size_t b = 0; b < batch.size(); ++b) {
      const PlannedUnit& u = plan_.units[batch[b]];
      for (size_t k = 0; k < u.tensors.size(); ++k)
        write(plan_.tensors[u.tensors[k]], bytes[b][k].data_ptr(), st);
      source_.release_expert(u.layer, u.expert, u.fc1);
    }
  }

  void note_fallback(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex_);
    fallbacks_.push_back(what);
  }

  // Runs `step`; its failure becomes this rank's error (the first one wins) and stops the work.
  void record(const std::function<void()>& step) {
    const std::string e = parallel::error_of(step);
    if (e.empty()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (error_.empty()) error_ = e;
    failed_ = true;
  }

  const ModelConfig& config_;
  const parallel::ParallelState& ps_;
  parallel::Communicator& world_;
  const ExportSource& source_;
  const ExportOptions& options_;
  const ExportPlan& plan_;
  const std::string dir_;
  const int me_;
  const bool batched_;  // GPU with ETP 1: units quantized in batches (batched_units.h)
  const int threads_;
  WorkQueue<WorkItem> queue_;
  std::vector<ThreadStats> stats_;
  const at::ScalarType shard_type_;
  std::map<int, io::PlacedFile> files_;  // the output files this rank writes into
  uint64_t my_bytes_ = 0;
  std::atomic<uint64_t> done_bytes_{0};
  std::atomic<bool> failed_{false};
  double wait_s_ = 0;
  std::mutex mutex_;  // guards written_, fallbacks_, error_, progress
  std::vector<std::string> written_;
  std::vector<std::string> fallbacks_;
  std::string error_;
};

}  // namespace

RankShare produce_rank_share(const ModelConfig& config, const parallel::ParallelState& ps,
                             parallel::Communicator& world, const ExportSource& source,
                             const ExportOptions& options, const ExportPlan& plan,
                             const std::string& dir, int threads) {
  return RankProducer(config, ps, world, source, options, plan, dir, threads).run();
}

}  // namespace moequant::export_detail
