// bench_amax_sync: the batched amax sync against one all-reduce per quantizer.
//
// The TARGETS.md case: 48 layers x 3 grouped linears, each with one shared quantizer and one per
// expert for 128 experts = 18,576 per-tensor quantizers. Every rank holds all of them and all are
// reduced over one group spanning the world (as in the measurement of TARGETS.md), so the three
// rows move the same values:
//   per-quantizer   one all_reduce_max per quantizer (what Python tools do): 18,576 collectives
//   sync_amax       the batched sync: consistency check + one packed all_reduce_max
//   AmaxSyncPlan    the same with the plan (sort, hashes, check) made once, as a loop that syncs
//                   every step would: one packed all_reduce_max per run
//   one all-reduce  a single all_reduce_max of all values, no check: the floor to match
// Each row checks every value against the MAX over ranks computed locally.
//
//   launch/mpirun.sh -np 4 build/bench/bench_amax_sync                 (CPU ranks, MPI)
//   launch/mpirun.sh -np 2 build/bench/bench_amax_sync --nccl          (one GPU per rank)
//   options: --layers 6,12,48 (sweep; default 12,48)  --experts N (128)  --iters N (20)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "moequant/common/error.h"
#include "moequant/parallel/amax_sync.h"
#include "moequant/parallel/bootstrap.h"
#include "moequant/parallel/job_abort.h"

#ifdef MOEQUANT_HAS_NCCL
#include <cuda_runtime.h>
#endif

using namespace moequant;
using namespace moequant::parallel;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  bool nccl = false;
  std::vector<int> layers{12, 48};
  int experts = 128;
  int iters = 20;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      MQ_CHECK(i + 1 < argc, a, " needs a value");
      return argv[++i];
    };
    if (a == "--nccl") {
      o.nccl = true;
    } else if (a == "--layers") {
      o.layers.clear();
      std::stringstream ss(next());
      for (std::string x; std::getline(ss, x, ',');) o.layers.push_back(std::stoi(x));
    } else if (a == "--experts") {
      o.experts = std::stoi(next());
    } else if (a == "--iters") {
      o.iters = std::max(1, std::stoi(next()));
    } else {
      MQ_THROW("unknown option ", a, " (use --nccl, --layers L1,L2,..., --experts N, --iters N)");
    }
  }
  return o;
}

// The amax rank `rank` observed for quantizer i: some quantizers saw nothing on some ranks.
float local_amax(size_t i, int rank) {
  const uint32_t h = static_cast<uint32_t>(i * 2654435761u) ^ static_cast<uint32_t>(rank * 40503u);
  if (h % 7 == 0) return kUncalibratedAmax;
  return static_cast<float>(h % 100000) / 1000.0f;
}

struct Case {
  std::vector<std::string> names;
  std::vector<std::vector<float>> values;  // one per quantizer
  std::vector<float> expected;
};

Case make_case(int layers, int experts, int rank, int world) {
  Case c;
  const char* linears[] = {"linear_fc1", "linear_fc2", "linear_fc3"};
  for (int l = 0; l < layers; ++l) {
    for (const char* lin : linears) {
      const std::string base = "layers." + std::to_string(l) + ".mlp.experts.";
      c.names.push_back(base + lin + ".weight_quantizer");
      for (int e = 0; e < experts; ++e)
        c.names.push_back(base + std::to_string(e) + "." + lin + ".weight_quantizer");
    }
  }
  for (size_t i = 0; i < c.names.size(); ++i) {
    c.values.push_back({local_amax(i, rank)});
    float m = kUncalibratedAmax;
    for (int r = 0; r < world; ++r) m = std::max(m, local_amax(i, r));
    c.expected.push_back(m);
  }
  return c;
}

void reset(Case& c, int rank) {
  for (size_t i = 0; i < c.values.size(); ++i) c.values[i][0] = local_amax(i, rank);
}

bool check(const Case& c) {
  for (size_t i = 0; i < c.values.size(); ++i)
    if (c.values[i][0] != c.expected[i]) return false;
  return true;
}

struct Row {
  std::string method;
  uint64_t collectives = 0;
  double seconds = 0;  // median over iterations of the slowest rank
  bool ok = true;
};

// Times `body` `iters` times (after a barrier each); returns the median of the slowest rank.
template <typename Body>
double time_it(Communicator& world, int iters, Body&& body) {
  std::vector<float> ts;
  for (int it = 0; it < iters; ++it) {
    world.barrier();
    const auto t0 = Clock::now();
    body();
    float t = std::chrono::duration<float>(Clock::now() - t0).count();
    world.all_reduce_max(&t, 1);
    ts.push_back(t);
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

int run(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  std::unique_ptr<Communicator> world_comm =
      bootstrap_world(opt.nccl ? DeviceKind::kCuda : DeviceKind::kCpu);
  const int rank = world_comm->rank(), world = world_comm->size();
  const std::string backend = world_comm->backend();
  ParallelSizes sizes;
  sizes.ep = world;  // one group spanning the world
  ProcessGroups groups =
      ProcessGroups::split_from(std::move(world_comm), ParallelState(world, rank, sizes));
  // The group spanning the world: EP here, the world communicator itself. The per-quantizer and
  // single all-reduce rows use the world communicator so that a world of one GPU still runs
  // NCCL (a group of size 1 would be a SingleCommunicator).
  Communicator& w = groups.world();
  if (rank == 0)
    std::printf(
        "# bench_amax_sync: %d ranks, backend %s, %d experts, %d iterations "
        "(per-quantizer: 1); time = median of the slowest rank\n",
        world, backend.c_str(), opt.experts, opt.iters);
  if (rank == 0)
    std::printf("%8s %11s  %-44s %12s %12s %12s  %s\n", "layers", "quantizers", "method",
                "collectives", "time_ms", "speedup", "check");

  bool all_ok = true;
  for (int layers : opt.layers) {
    Case c = make_case(layers, opt.experts, rank, world);
    std::vector<AmaxEntry> entries;
    for (size_t i = 0; i < c.names.size(); ++i)
      entries.push_back({c.names[i], &c.values[i], group_bit(Group::kEP)});
    std::vector<Row> rows;

    {  // one collective per quantizer
      Row r;
      r.method = "per-quantizer all_reduce_max";
#ifdef MOEQUANT_HAS_NCCL
      float* dev = nullptr;
      if (w.supports_device_buffers()) {
        r.method = "per-quantizer all_reduce_max_device";
        MQ_CHECK(cudaMalloc(&dev, c.values.size() * sizeof(float)) == cudaSuccess, "cudaMalloc");
      }
#endif
      reset(c, rank);
      uint64_t collectives = 0;
      r.seconds = time_it(w, 1, [&] {
        const uint64_t before = w.collective_count();
#ifdef MOEQUANT_HAS_NCCL
        if (dev) {  // values live on the device, as a GPU tool's amax does
          std::vector<float> host(c.values.size());
          for (size_t i = 0; i < host.size(); ++i) host[i] = c.values[i][0];
          cudaMemcpy(dev, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
          for (size_t i = 0; i < host.size(); ++i) w.all_reduce_max_device(dev + i, 1);
          cudaMemcpy(host.data(), dev, host.size() * sizeof(float), cudaMemcpyDeviceToHost);
          for (size_t i = 0; i < host.size(); ++i) c.values[i][0] = host[i];
        } else
#endif
        {
          for (auto& v : c.values) w.all_reduce_max(v.data(), 1);
        }
        collectives = w.collective_count() - before;
      });
      r.collectives = collectives;
      r.ok = check(c);
#ifdef MOEQUANT_HAS_NCCL
      if (dev) cudaFree(dev);
#endif
      rows.push_back(r);
    }
    {  // the batched sync
      Row r;
      r.method = "sync_amax (check + 1 packed all_reduce_max)";
      uint64_t collectives = 0;
      r.ok = true;
      r.seconds = time_it(w, opt.iters, [&] {
        reset(c, rank);
        collectives = sync_amax(entries, groups).total_collectives();
      });
      r.collectives = collectives;
      r.ok = check(c);
      rows.push_back(r);
    }
    {  // the same with the plan made once (as a training loop that syncs every step would)
      Row r;
      r.method = "AmaxSyncPlan::run (1 packed all_reduce_max)";
      AmaxSyncPlan plan(entries, groups);
      uint64_t collectives = 0;
      r.seconds = time_it(w, opt.iters, [&] {
        reset(c, rank);
        collectives = plan.run().total_collectives();
      });
      r.collectives = collectives;
      r.ok = check(c);
      rows.push_back(r);
    }
    {  // the floor: one all_reduce_max of every value, no bookkeeping
      Row r;
      r.method = "one all_reduce_max of all values";
      std::vector<float> flat(c.values.size());
      r.seconds = time_it(w, opt.iters, [&] {
        for (size_t i = 0; i < flat.size(); ++i) flat[i] = local_amax(i, rank);
        w.all_reduce_max(flat.data(), flat.size());
      });
      r.collectives = 1;
      for (size_t i = 0; i < flat.size(); ++i) c.values[i][0] = flat[i];
      r.ok = check(c);
      rows.push_back(r);
    }

    // A row is correct only if it is correct on every rank.
    for (Row& r : rows) {
      int64_t bad = r.ok ? 0 : 1;
      w.all_reduce_max(&bad, 1);
      r.ok = bad == 0;
      all_ok = all_ok && r.ok;
    }
    if (rank == 0) {
      for (const Row& r : rows)
        std::printf("%8d %11zu  %-44s %12llu %12.3f %11.1fx  %s\n", layers, c.names.size(),
                    r.method.c_str(), static_cast<unsigned long long>(r.collectives),
                    r.seconds * 1e3, rows[0].seconds / r.seconds, r.ok ? "ok" : "WRONG");
      std::fflush(stdout);
    }
  }
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  return run_or_abort_job([&] { return run(argc, argv); });
}
