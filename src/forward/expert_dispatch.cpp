#include "moequant/forward/expert_dispatch.h"

#include <ATen/ATen.h>

#include <cstring>
#include <functional>

#include "moequant/common/error.h"

namespace moequant {

namespace {

using parallel::Group;

// A block of routed rows as bytes: per-expert row counts (int64), then the rows (float32).
std::string pack(const std::vector<int64_t>& counts, const at::Tensor& rows) {
  const at::Tensor host = rows.to(at::kCPU).contiguous();
  std::string out(counts.size() * sizeof(int64_t) + host.nbytes(), '\0');
  std::memcpy(out.data(), counts.data(), counts.size() * sizeof(int64_t));
  if (host.nbytes())
    std::memcpy(out.data() + counts.size() * sizeof(int64_t), host.data_ptr(), host.nbytes());
  return out;
}

struct Block {
  std::vector<int64_t> counts;
  at::Tensor rows;  // [sum(counts), H] float32, CPU
};

Block unpack(const std::string& bytes, size_t num_counts, int64_t hidden) {
  Block b;
  b.counts.resize(num_counts);
  const size_t head = num_counts * sizeof(int64_t);
  MQ_CHECK(bytes.size() >= head, "internal: a routed block of ", bytes.size(), " bytes");
  std::memcpy(b.counts.data(), bytes.data(), head);
  int64_t n = 0;
  for (int64_t c : b.counts) n += c;
  MQ_CHECK(bytes.size() == head + static_cast<size_t>(n * hidden) * sizeof(float),
           "internal: a routed block of ", bytes.size(), " bytes for ", n, " rows");
  b.rows = at::empty({n, hidden}, at::kFloat);
  if (n) std::memcpy(b.rows.data_ptr(), bytes.data() + head, b.rows.nbytes());
  return b;
}

std::string rows_bytes(const at::Tensor& rows) {
  const at::Tensor host = rows.to(at::kCPU).contiguous();
  return std::string(static_cast<const char*>(host.data_ptr()), host.nbytes());
}

at::Tensor rows_of(const std::string& bytes, int64_t hidden) {
  const int64_t n = static_cast<int64_t>(bytes.size() / (hidden * sizeof(float)));
  at::Tensor t = at::empty({n, hidden}, at::kFloat);
  if (n) std::memcpy(t.data_ptr(), bytes.data(), t.nbytes());
  return t;
}

// Calls `fn` with every rank's `local` block of `comm`, in rank order, one at a time (a broadcast
// each), so that no rank holds more than one peer's block at once.
void for_each_block(parallel::Communicator& comm, const std::string& local,
                    const std::function<void(const std::string&)>& fn) {
  if (comm.size() == 1) {
    fn(local);
    return;
  }
  const std::vector<std::string> sizes = comm.all_gather_bytes(std::to_string(local.size()));
  for (int p = 0; p < comm.size(); ++p) {
    // Empty blocks too: callers may run collectives inside `fn`, which every rank must reach.
    const size_t n = std::stoull(sizes[p]);
    std::string block = p == comm.rank() ? local : std::string(n, '\0');
    comm.broadcast(block.data(), n, p);
    fn(block);
  }
}

// Rows observed per expert launch of the all-token pass: bounds the activations held at once.
constexpr int64_t kObserveRows = 8192;

}  // namespace

void DispatchedExperts::observe_all_tokens(std::function<void()> flush) {
  all_tokens_ = true;
  flush_ = std::move(flush);
}

void DispatchedExperts::observe_every_expert(const at::Tensor& x) {
  const int64_t H = x.size(1);
  // Every rank of the EP group brings its tokens, and every ETP peer its group's: each shard of
  // each local expert sees the tokens of the whole EP x ETP group.
  for_each_block(groups_.get(Group::kEP), rows_bytes(x), [&](const std::string& ep_block) {
    for_each_block(groups_.get(Group::kETP), ep_block, [&](const std::string& rows) {
      const at::Tensor all = rows_of(rows, H).to(x.device());
      for (int64_t r = 0; r < all.size(0); r += kObserveRows) {
        const at::Tensor chunk = all.narrow(0, r, std::min(kObserveRows, all.size(0) - r));
        for (int j = 0; j < experts_per_rank_; ++j) {
          const SwiGluWeights& w = shards_.at(first_local_ + j);
          observe_(first_local_ + j, true, chunk);
          observe_(first_local_ + j, false,
                   at::silu(at::linear(chunk, w.gate)) * at::linear(chunk, w.up));
        }
        if (flush_) flush_();
      }
    });
  });
}

DispatchedExperts::DispatchedExperts(const parallel::ProcessGroups& groups, int num_experts,
                                     std::map<int, SwiGluWeights> shards,
                                     ExpertInputObserver observe)
    : groups_(groups),
      num_experts_(num_experts),
      experts_per_rank_(num_experts / groups.get(Group::kEP).size()),
      first_local_(groups.get(Group::kEP).rank() * experts_per_rank_),
      shards_(std::move(shards)),
      observe_(std::move(observe)) {
  for (int j = 0; j < experts_per_rank_; ++j)
    MQ_CHECK(shards_.count(first_local_ + j), "internal: expert ", first_local_ + j,
             " is held here but its shard was not loaded");
}

at::Tensor DispatchedExperts::run_local(const at::Tensor& x_sorted,
                                        const std::vector<int64_t>& counts) {
  std::vector<int> ids(experts_per_rank_);
  for (int j = 0; j < experts_per_rank_; ++j) ids[j] = first_local_ + j;
  auto weights_of = [&](int e) -> const SwiGluWeights& { return shards_.at(e); };
  // With the all-token pass the routed rows need no observing of their own (a subset of it).
  const ExpertInputObserver observe = all_tokens_ ? ExpertInputObserver{} : observe_;
  parallel::Communicator& etp = groups_.get(Group::kETP);
  if (etp.size() == 1) return run_sorted_experts(x_sorted, counts, ids, weights_of, observe);
  // Every ETP shard of these experts runs on the rows any of them received; fc2's partial sums
  // (this shard's columns of down) are then added over ETP, and each keeps its own rows' part.
  const int64_t H = x_sorted.size(1);
  const std::vector<std::string> blocks = etp.all_gather_bytes(pack(counts, x_sorted));
  std::vector<at::Tensor> partials;
  int64_t mine_begin = 0, total = 0;
  for (int p = 0; p < etp.size(); ++p) {
    const Block b = unpack(blocks[p], counts.size(), H);
    if (p == etp.rank()) mine_begin = total;
    total += b.rows.size(0);
    partials.push_back(
        run_sorted_experts(b.rows.to(x_sorted.device()), b.counts, ids, weights_of, observe)
            .to(at::kCPU)
            .contiguous());
  }
  at::Tensor sum = at::cat(partials, 0).contiguous();
  etp.all_reduce_sum(sum.data_ptr<float>(), static_cast<size_t>(sum.numel()));
  return sum.narrow(0, mine_begin, x_sorted.size(0)).to(x_sorted.device());
}

at::Tensor DispatchedExperts::run(const at::Tensor& x, const Routing& routing) {
  if (all_tokens_ && observe_) observe_every_expert(x);
  const int64_t n = x.size(0), k = routing.experts.size(1), H = x.size(1);
  const ExpertOrder eo = expert_order(routing, num_experts_);
  const at::Tensor tokens = at::floor_divide(eo.order, k);
  const at::Tensor x_sorted = x.index_select(0, tokens);
  parallel::Communicator& ep = groups_.get(Group::kEP);
  at::Tensor y_sorted;
  if (ep.size() == 1) {
    y_sorted = run_local(x_sorted, eo.counts);
  } else {
    // Rows sorted by expert are grouped by destination (EP rank d holds experts d*per..): one
    // contiguous block per destination, with its experts' counts.
    const int per = experts_per_rank_;
    std::vector<std::string> out(ep.size());
    int64_t row = 0;
    for (int d = 0; d < ep.size(); ++d) {
      std::vector<int64_t> counts(eo.counts.begin() + d * per, eo.counts.begin() + (d + 1) * per);
      int64_t rows = 0;
      for (int64_t c : counts) rows += c;
      out[d] = pack(counts, x_sorted.narrow(0, row, rows));
      row += rows;
    }
    const std::vector<std::string> in = ep.all_to_all_bytes(out);
    // Local rows expert-major (expert j: source 0's rows, then source 1's, ...).
    std::vector<Block> sources;
    for (const std::string& b : in) sources.push_back(unpack(b, per, H));
    std::vector<at::Tensor> parts;
    std::vector<int64_t> local_counts(per, 0);
    std::vector<std::vector<int64_t>> source_offset(sources.size(),
                                                    std::vector<int64_t>(per + 1, 0));
    for (size_t s = 0; s < sources.size(); ++s)
      for (int j = 0; j < per; ++j)
        source_offset[s][j + 1] = source_offset[s][j] + sources[s].counts[j];
    for (int j = 0; j < per; ++j)
      for (size_t s = 0; s < sources.size(); ++s) {
        local_counts[j] += sources[s].counts[j];
        parts.push_back(sources[s].rows.narrow(0, source_offset[s][j], sources[s].counts[j]));
      }
    const at::Tensor x_local = at::cat(parts, 0).to(x.device());
    const at::Tensor y_local = run_local(x_local, local_counts).to(at::kCPU).contiguous();
    // Back to each source, its rows in the order it sent them.
    std::vector<std::vector<at::Tensor>> back(sources.size());
    int64_t at_row = 0;
    for (int j = 0; j < per; ++j)
      for (size_t s = 0; s < sources.size(); ++s) {
        back[s].push_back(y_local.narrow(0, at_row, sources[s].counts[j]));
        at_row += sources[s].counts[j];
      }
    std::vector<std::string> replies(sources.size());
    for (size_t s = 0; s < sources.size(); ++s)
      replies[s] = back[s].empty() ? std::string() : rows_bytes(at::cat(back[s], 0));
    std::vector<at::Tensor> results;
    for (const std::string& r : ep.all_to_all_bytes(replies)) results.push_back(rows_of(r, H));
    y_sorted = at::cat(results, 0).to(x.device());
  }
  const at::Tensor w = routing.weights.reshape({-1}).index_select(0, eo.order).unsqueeze(1);
  return at::zeros({n, H}, x.options()).index_add_(0, tokens, y_sorted * w);
}

}  // namespace moequant
