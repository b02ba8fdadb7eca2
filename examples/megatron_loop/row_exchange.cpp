#include "row_exchange.h"

#include <ATen/ATen.h>

#include <cstring>
#include <numeric>
#include <string>

#include "moequant/common/error.h"

namespace loop {

namespace {

std::vector<int64_t> offsets_of(const std::vector<int64_t>& counts) {
  std::vector<int64_t> off(counts.size() + 1, 0);
  std::partial_sum(counts.begin(), counts.end(), off.begin() + 1);
  return off;
}

std::string to_bytes(const at::Tensor& t) {
  const at::Tensor host = t.to(at::kCPU).contiguous();
  return std::string(static_cast<const char*>(host.data_ptr()), host.nbytes());
}

// Rows of `like`'s width and dtype read back from bytes (on the CPU).
at::Tensor from_bytes(const std::string& bytes, const at::Tensor& like) {
  const int64_t row_bytes = like.size(1) * static_cast<int64_t>(like.element_size());
  MQ_CHECK(row_bytes > 0 && static_cast<int64_t>(bytes.size()) % row_bytes == 0,
           "row exchange: ", bytes.size(), " bytes do not hold whole rows of ", row_bytes);
  at::Tensor t = at::empty({static_cast<int64_t>(bytes.size()) / row_bytes, like.size(1)},
                           like.options().device(at::kCPU));
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

}  // namespace

at::Tensor all_to_all_rows(Communicator& comm, const at::Tensor& x,
                           const std::vector<int64_t>& send_rows,
                           const std::vector<int64_t>& recv_rows) {
  const int n = comm.size(), me = comm.rank();
  MQ_CHECK(static_cast<int>(send_rows.size()) == n && static_cast<int>(recv_rows.size()) == n,
           "all_to_all_rows: counts for ", send_rows.size(), "/", recv_rows.size(),
           " ranks in a group of ", n);
  const std::vector<int64_t> send_off = offsets_of(send_rows), recv_off = offsets_of(recv_rows);
  MQ_CHECK(x.dim() == 2 && x.size(0) == send_off[n], "all_to_all_rows: input ", x.sizes(),
           " does not hold the ", send_off[n], " rows to send");
  MQ_CHECK(send_rows[me] == recv_rows[me], "all_to_all_rows: ", send_rows[me],
           " rows to send to myself but ", recv_rows[me], " to receive");
  const at::Tensor in = x.to(at::kCPU).contiguous();
  at::Tensor out = at::empty({recv_off[n], x.size(1)}, in.options());
  const size_t row_bytes = static_cast<size_t>(x.size(1)) * x.element_size();
  auto send_to = [&](int p) {
    if (send_rows[p] == 0) return;
    comm.send(static_cast<const char*>(in.data_ptr()) + send_off[p] * row_bytes,
              send_rows[p] * row_bytes, p);
  };
  auto recv_from = [&](int p) {
    if (recv_rows[p] == 0) return;
    comm.recv(static_cast<char*>(out.data_ptr()) + recv_off[p] * row_bytes,
              recv_rows[p] * row_bytes, p);
  };
  out.narrow(0, recv_off[me], recv_rows[me]).copy_(in.narrow(0, send_off[me], send_rows[me]));
  // Pairs (i, j), i < j, in lexicographic order: the earliest unfinished pair always has both
  // ranks waiting on it, so the exchange progresses with blocking sends and receives.
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      if (me == i) {
        send_to(j);
        recv_from(j);
      } else if (me == j) {
        recv_from(i);
        send_to(i);
      }
    }
  }
  return out.to(x.device());
}

at::Tensor all_gather_rows(Communicator& comm, const at::Tensor& x) {
  MQ_CHECK(x.dim() == 2, "all_gather_rows: expects rows, got ", x.sizes());
  if (comm.size() == 1) return x;
  std::vector<at::Tensor> parts;
  for (const std::string& bytes : comm.all_gather_bytes(to_bytes(x)))
    parts.push_back(from_bytes(bytes, x));
  return at::cat(parts, 0).to(x.device());
}

at::Tensor reduce_scatter_rows(Communicator& comm, const at::Tensor& x,
                               const std::vector<int64_t>& rows) {
  const std::vector<int64_t> off = offsets_of(rows);
  MQ_CHECK(static_cast<int>(rows.size()) == comm.size() && x.dim() == 2 && x.size(0) == off.back(),
           "reduce_scatter_rows: input ", x.sizes(), " does not match ", rows.size(),
           " blocks of rows summing to ", off.back());
  if (comm.size() == 1) return x;
  const std::vector<std::string> all = comm.all_gather_bytes(to_bytes(x));
  at::Tensor sum = from_bytes(all[0], x);
  for (size_t r = 1; r < all.size(); ++r) sum.add_(from_bytes(all[r], x));
  const int me = comm.rank();
  return sum.narrow(0, off[me], rows[me]).to(x.device());
}

void all_reduce_sum(Communicator& comm, at::Tensor& flat) {
  if (comm.size() == 1 || flat.numel() == 0) return;
  const at::Tensor rows = flat.reshape({1, -1});
  const std::vector<std::string> all = comm.all_gather_bytes(to_bytes(rows));
  at::Tensor sum = from_bytes(all[0], rows);
  for (size_t r = 1; r < all.size(); ++r) sum.add_(from_bytes(all[r], rows));
  flat.copy_(sum.reshape(flat.sizes()));
}

std::vector<int64_t> all_gather_counts(Communicator& comm, const std::vector<int64_t>& local) {
  const std::string mine(reinterpret_cast<const char*>(local.data()),
                         local.size() * sizeof(int64_t));
  std::vector<int64_t> out;
  for (const std::string& bytes : comm.all_gather_bytes(mine)) {
    MQ_CHECK(bytes.size() == mine.size(), "all_gather_counts: ranks disagree on the length");
    const size_t at = out.size();
    out.resize(at + local.size());
    if (!bytes.empty()) std::memcpy(out.data() + at, bytes.data(), bytes.size());
  }
  return out;
}

}  // namespace loop
