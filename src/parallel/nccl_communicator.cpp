#include "moequant/parallel/nccl_communicator.h"

#include <cuda_runtime.h>

#include <cstring>

#include "moequant/common/error.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 18, 0)
#error "moequant needs NCCL >= 2.18 (non-blocking communicators and ncclCommSplit)"
#endif

namespace moequant::parallel {

namespace {

cudaStream_t as_stream(void* s) {
  return static_cast<cudaStream_t>(s);
}

// Makes `device` current for the scope of a call and restores the caller's device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) cudaSetDevice(device);
  }
  ~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }

 private:
  int previous_ = -1;
};

ncclConfig_t nonblocking_config(const std::string& name) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  config.commName = name.c_str();  // copied by NCCL during creation
  return config;
}

// Polls the communicator state until it leaves ncclInProgress; false on timeout.
bool poll_state(ncclComm_t comm, const Deadline& deadline, ncclResult_t* state) {
  return poll_until(deadline, [&] {
    if (ncclCommGetAsyncError(comm, state) != ncclSuccess) *state = ncclInternalError;
    return *state != ncclInProgress;
  });
}

std::string nccl_error(ncclResult_t r, ncclComm_t comm) {
  const char* last = comm ? ncclGetLastError(comm) : nullptr;
  return str_cat(ncclGetErrorString(r), last && *last ? str_cat(" (", last, ")") : "");
}

}  // namespace

NcclCommunicator::NcclCommunicator(ncclComm_t comm, bool owned, int device, void* stream,
                                   const std::string& name, int world_rank,
                                   std::chrono::milliseconds timeout)
    : Communicator(
          [&] {
            int r = 0;
            ncclCommUserRank(comm, &r);
            return r;
          }(),
          [&] {
            int n = 0;
            ncclCommCount(comm, &n);
            return n;
          }(),
          name, world_rank, timeout),
      comm_(comm),
      owned_(owned),
      device_(device),
      stream_(stream),
      own_stream_(stream == nullptr) {
  if (own_stream_) {
    DeviceGuard guard(device_);
    cudaStream_t s = nullptr;
    const cudaError_t err = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
      if (owned_) ncclCommAbort(comm_);
      MQ_THROW(name, ": cudaStreamCreateWithFlags failed: ", cudaGetErrorString(err));
    }
    stream_ = s;
  }
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::create(const ncclUniqueId& id, int nranks,
                                                           int rank, int device,
                                                           const std::string& name, int world_rank,
                                                           std::chrono::milliseconds timeout) {
  DeviceGuard guard(device);
  const Deadline deadline(timeout);
  ncclConfig_t config = nonblocking_config(name);
  ncclComm_t comm = nullptr;
  ncclResult_t r = ncclCommInitRankConfig(&comm, nranks, id, rank, &config);
  if (r == ncclInProgress || r == ncclSuccess) {
    if (!poll_state(comm, deadline, &r)) {
      ncclCommAbort(comm);
      throw Error(timeout_message(name, "init", timeout, world_rank));
    }
  }
  if (r != ncclSuccess) {
    const std::string why = nccl_error(r, comm);
    if (comm) ncclCommAbort(comm);
    MQ_THROW(name, " ncclCommInitRankConfig failed on rank ", world_rank, " (device ", device,
             "): ", why);
  }
  return std::unique_ptr<NcclCommunicator>(
      new NcclCommunicator(comm, true, device, nullptr, name, world_rank, timeout));
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::wrap(ncclComm_t comm, const std::string& name,
                                                         int world_rank, void* stream,
                                                         std::chrono::milliseconds timeout) {
  MQ_CHECK(comm != nullptr, name, ": cannot wrap a null ncclComm_t");
  int device = 0;
  const ncclResult_t r = ncclCommCuDevice(comm, &device);
  MQ_CHECK(r == ncclSuccess, name, ": ncclCommCuDevice failed: ", ncclGetErrorString(r));
  return std::unique_ptr<NcclCommunicator>(
      new NcclCommunicator(comm, false, device, stream, name, world_rank, timeout));
}

NcclCommunicator::~NcclCommunicator() {
  DeviceGuard guard(device_);
  // After a failure the device may still be inside an aborted kernel's aftermath: freeing would
  // synchronize with it, so the staging memory is left to the process end.
  if (!failed()) {
    if (host_staging_) cudaFreeHost(host_staging_);
    if (device_staging_) cudaFree(device_staging_);
    if (own_stream_ && stream_) cudaStreamDestroy(as_stream(stream_));
  }
  if (!owned_ || comm_ == nullptr) return;  // the host's, or aborted already
  if (failed()) {
    ncclCommAbort(comm_);  // a failure that did not abort (a local error): never wait on peers
    return;
  }
  ncclResult_t state = ncclCommFinalize(comm_);
  if (state == ncclInProgress) poll_state(comm_, Deadline(timeout()), &state);
  if (state == ncclSuccess)
    ncclCommDestroy(comm_);
  else
    ncclCommAbort(comm_);
}

void NcclCommunicator::do_abort() noexcept {
  if (owned_ && comm_) {
    DeviceGuard guard(device_);
    ncclCommAbort(comm_);
    comm_ = nullptr;
  }
}

// Failures record their message first (abort() alone would record a plainer one), then abort the
// communicator so that no later call can wait on it, then throw.
void NcclCommunicator::fail_nccl(ncclResult_t r, const char* call) {
  const std::string why = nccl_error(r, comm_);
  try {
    fail(current_op(), str_cat(call, ": ", why));
  } catch (...) {
    do_abort();
    throw;
  }
}

void NcclCommunicator::abort_and_timeout() {
  try {
    fail_timeout(current_op());
  } catch (...) {
    do_abort();
    throw;
  }
}

void NcclCommunicator::check_cuda(int err, const char* call) {
  if (err == cudaSuccess) return;
  try {
    fail(current_op(), str_cat(call, ": ", cudaGetErrorString(static_cast<cudaError_t>(err))));
  } catch (...) {
    do_abort();
    throw;
  }
}

void NcclCommunicator::enqueued(ncclResult_t r, const char* call, const Deadline& deadline) {
  if (r == ncclInProgress) {
    // Non-blocking: the call is still being enqueued; no other NCCL call before it is.
    if (!poll_state(comm_, deadline, &r)) abort_and_timeout();
  }
  if (r != ncclSuccess) fail_nccl(r, call);
}

void NcclCommunicator::wait_stream(void* stream, const Deadline& deadline) {
  ncclResult_t state = ncclSuccess;
  cudaError_t query = cudaSuccess;
  const bool done = poll_until(deadline, [&] {
    if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) state = ncclInternalError;
    if (state != ncclSuccess && state != ncclInProgress) return true;
    query = cudaStreamQuery(as_stream(stream));
    return query != cudaErrorNotReady;
  });
  if (state != ncclSuccess && state != ncclInProgress) fail_nccl(state, "asynchronous error");
  if (!done) abort_and_timeout();
  check_cuda(query, "cudaStreamQuery");
}

void NcclCommunicator::reserve(size_t bytes) {
  bytes = std::max<size_t>(bytes, 256);
  if (bytes <= staging_bytes_) return;
  if (host_staging_) cudaFreeHost(host_staging_);
  if (device_staging_) cudaFree(device_staging_);
  host_staging_ = device_staging_ = nullptr;
  staging_bytes_ = 0;
  check_cuda(cudaMallocHost(&host_staging_, bytes), "cudaMallocHost");
  check_cuda(cudaMalloc(&device_staging_, bytes), "cudaMalloc");
  staging_bytes_ = bytes;
}

void NcclCommunicator::do_all_reduce(void* data, size_t n, ElemType type, ReduceOp op) {
  DeviceGuard guard(device_);
  const Deadline deadline(timeout());
  const size_t bytes = n * elem_size(type);
  reserve(bytes);
  std::memcpy(host_staging_, data, bytes);
  auto s = as_stream(stream_);
  check_cuda(cudaMemcpyAsync(device_staging_, host_staging_, bytes, cudaMemcpyHostToDevice, s),
             "cudaMemcpyAsync");
  enqueued(ncclAllReduce(device_staging_, device_staging_, n,
                         type == ElemType::kFloat32   ? ncclFloat32
                         : type == ElemType::kFloat64 ? ncclFloat64
                                                      : ncclInt64,
                         op == ReduceOp::kMax ? ncclMax : ncclSum, comm_, s),
           "ncclAllReduce", deadline);
  check_cuda(cudaMemcpyAsync(host_staging_, device_staging_, bytes, cudaMemcpyDeviceToHost, s),
             "cudaMemcpyAsync");
  wait_stream(stream_, deadline);
  std::memcpy(data, host_staging_, bytes);
}

void NcclCommunicator::do_broadcast(void* bytes, size_t n, int root) {
  DeviceGuard guard(device_);
  const Deadline deadline(timeout());
  reserve(n);
  auto s = as_stream(stream_);
  if (rank() == root) {
    std::memcpy(host_staging_, bytes, n);
    check_cuda(cudaMemcpyAsync(device_staging_, host_staging_, n, cudaMemcpyHostToDevice, s),
               "cudaMemcpyAsync");
  }
  enqueued(ncclBroadcast(device_staging_, device_staging_, n, ncclUint8, root, comm_, s),
           "ncclBroadcast", deadline);
  if (rank() != root)
    check_cuda(cudaMemcpyAsync(host_staging_, device_staging_, n, cudaMemcpyDeviceToHost, s),
               "cudaMemcpyAsync");
  wait_stream(stream_, deadline);
  if (rank() != root) std::memcpy(bytes, host_staging_, n);
}

std::vector<std::string> NcclCommunicator::do_all_gather_bytes(const std::string& local) {
  // NCCL gathers equal sizes only: gather the sizes, then every string padded to the longest.
  DeviceGuard guard(device_);
  const Deadline deadline(timeout());
  const auto nranks = static_cast<size_t>(size());
  const auto me = static_cast<size_t>(rank());
  auto s = as_stream(stream_);

  reserve(nranks * sizeof(int64_t));
  auto* sizes = static_cast<int64_t*>(host_staging_);
  sizes[me] = static_cast<int64_t>(local.size());
  auto* dev_sizes = static_cast<int64_t*>(device_staging_);
  check_cuda(
      cudaMemcpyAsync(dev_sizes + me, sizes + me, sizeof(int64_t), cudaMemcpyHostToDevice, s),
      "cudaMemcpyAsync");
  enqueued(ncclAllGather(dev_sizes + me, dev_sizes, 1, ncclInt64, comm_, s), "ncclAllGather",
           deadline);
  check_cuda(cudaMemcpyAsync(sizes, dev_sizes, nranks * sizeof(int64_t), cudaMemcpyDeviceToHost, s),
             "cudaMemcpyAsync");
  wait_stream(stream_, deadline);
  std::vector<int64_t> lengths(sizes, sizes + nranks);
  size_t longest = 0;
  for (int64_t l : lengths) longest = std::max(longest, static_cast<size_t>(l));

  std::vector<std::string> out(nranks);
  if (longest == 0) return out;  // every rank sees the same lengths: all skip alike
  reserve(nranks * longest);
  auto* host = static_cast<char*>(host_staging_);
  auto* dev = static_cast<char*>(device_staging_);
  std::memcpy(host + me * longest, local.data(), local.size());
  check_cuda(
      cudaMemcpyAsync(dev + me * longest, host + me * longest, longest, cudaMemcpyHostToDevice, s),
      "cudaMemcpyAsync");
  enqueued(ncclAllGather(dev + me * longest, dev, longest, ncclUint8, comm_, s), "ncclAllGather",
           deadline);
  check_cuda(cudaMemcpyAsync(host, dev, nranks * longest, cudaMemcpyDeviceToHost, s),
             "cudaMemcpyAsync");
  wait_stream(stream_, deadline);
  for (size_t i = 0; i < nranks; ++i)
    out[i].assign(host + i * longest, static_cast<size_t>(lengths[i]));
  return out;
}

std::vector<std::string> NcclCommunicator::do_all_to_all_bytes(
    const std::vector<std::string>& to_each) {
  // Every rank learns every pair's size (one gather), then one grouped send/recv per peer
  // through the device staging buffer: [what this rank sends, packed | what it receives].
  const auto nranks = static_cast<size_t>(size());
  const auto me = static_cast<size_t>(rank());
  std::string my_sizes(nranks * sizeof(int64_t), '\0');
  for (size_t r = 0; r < nranks; ++r) {
    const int64_t v = static_cast<int64_t>(to_each[r].size());
    std::memcpy(my_sizes.data() + r * sizeof(int64_t), &v, sizeof(v));
  }
  const std::vector<std::string> all_sizes = do_all_gather_bytes(my_sizes);
  auto pair_size = [&](size_t from, size_t to) {
    int64_t v;
    std::memcpy(&v, all_sizes[from].data() + to * sizeof(int64_t), sizeof(v));
    return static_cast<size_t>(v);
  };
  std::vector<size_t> send_off(nranks), recv_off(nranks);
  size_t send_total = 0, recv_total = 0;
  for (size_t r = 0; r < nranks; ++r) {
    send_off[r] = send_total;
    send_total += to_each[r].size();
    recv_off[r] = recv_total;
    recv_total += pair_size(r, me);
  }
  std::vector<std::string> out(nranks);
  if (send_total + recv_total == 0) return out;
  DeviceGuard guard(device_);
  const Deadline deadline(timeout());
  reserve(send_total + recv_total);
  auto* host = static_cast<char*>(host_staging_);
  auto* dev = static_cast<char*>(device_staging_);
  for (size_t r = 0; r < nranks; ++r)
    if (!to_each[r].empty()) std::memcpy(host + send_off[r], to_each[r].data(), to_each[r].size());
  auto s = as_stream(stream_);
  check_cuda(cudaMemcpyAsync(dev, host, send_total, cudaMemcpyHostToDevice, s), "cudaMemcpyAsync");
  enqueued(ncclGroupStart(), "ncclGroupStart", deadline);
  for (size_t r = 0; r < nranks; ++r) {
    if (r == me) continue;
    if (!to_each[r].empty())
      enqueued(
          ncclSend(dev + send_off[r], to_each[r].size(), ncclUint8, static_cast<int>(r), comm_, s),
          "ncclSend", deadline);
    if (pair_size(r, me) > 0)
      enqueued(ncclRecv(dev + send_total + recv_off[r], pair_size(r, me), ncclUint8,
                        static_cast<int>(r), comm_, s),
               "ncclRecv", deadline);
  }
  enqueued(ncclGroupEnd(), "ncclGroupEnd", deadline);
  check_cuda(
      cudaMemcpyAsync(host + send_total, dev + send_total, recv_total, cudaMemcpyDeviceToHost, s),
      "cudaMemcpyAsync");
  wait_stream(stream_, deadline);
  for (size_t r = 0; r < nranks; ++r)
    out[r] = r == me ? to_each[r] : std::string(host + send_total + recv_off[r], pair_size(r, me));
  return out;
}

void NcclCommunicator::do_barrier() {
  DeviceGuard guard(device_);
  const Deadline deadline(timeout());
  reserve(sizeof(float));
  enqueued(ncclAllReduce(device_staging_, device_staging_, 1, ncclFloat32, ncclMax, comm_,
                         as_stream(stream_)),
           "ncclAllReduce", deadline);
  wait_stream(stream_, deadline);
}

std::unique_ptr<Communicator> NcclCommunicator::do_split(int color, int key,
                                                         const std::string& name) {
  DeviceGuard guard(device_);
  const Deadline deadline(timeout());
  ncclConfig_t config = nonblocking_config(name);
  // NCCL's split job stores the child into *slot from its own thread once it finishes (success
  // or failure), so the slot must outlive this call: it is freed only after NCCL wrote it, and
  // leaked when we give up.
  auto* slot = new ncclComm_t(nullptr);
  const ncclResult_t r = ncclCommSplit(comm_, color, key, slot, &config);
  if (r != ncclSuccess && r != ncclInProgress) fail_nccl(r, "ncclCommSplit");
  ncclComm_t sub = nullptr;
  ncclResult_t state = ncclInProgress;
  const bool done = poll_until(deadline, [&] {
    ncclResult_t parent = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &parent) != ncclSuccess) parent = ncclInternalError;
    if (parent != ncclSuccess && parent != ncclInProgress) {
      state = parent;
      return true;
    }
    sub = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (sub == nullptr) return false;
    if (ncclCommGetAsyncError(sub, &state) != ncclSuccess) state = ncclInternalError;
    return state != ncclInProgress;
  });
  if (!done) abort_and_timeout();  // aborting the parent also stops the child's init
  if (state != ncclSuccess) {
    if (sub) ncclCommAbort(sub);
    fail_nccl(state, "ncclCommSplit");
  }
  delete slot;
  auto child = std::unique_ptr<NcclCommunicator>(
      new NcclCommunicator(sub, true, device_, nullptr, name, world_rank(), timeout()));
  child->keep_alive_ = keep_alive_;
  return child;
}

void NcclCommunicator::do_send(const void* bytes, size_t n, int peer) {
  DeviceGuard guard(device_);
  const Deadline deadline(timeout());
  reserve(n);
  std::memcpy(host_staging_, bytes, n);
  auto s = as_stream(stream_);
  check_cuda(cudaMemcpyAsync(device_staging_, host_staging_, n, cudaMemcpyHostToDevice, s),
             "cudaMemcpyAsync");
  enqueued(ncclSend(device_staging_, n, ncclUint8, peer, comm_, s), "ncclSend", deadline);
  wait_stream(stream_, deadline);
}

void NcclCommunicator::do_recv(void* bytes, size_t n, int peer) {
  DeviceGuard guard(device_);
  const Deadline deadline(timeout());
  reserve(n);
  auto s = as_stream(stream_);
  enqueued(ncclRecv(device_staging_, n, ncclUint8, peer, comm_, s), "ncclRecv", deadline);
  check_cuda(cudaMemcpyAsync(host_staging_, device_staging_, n, cudaMemcpyDeviceToHost, s),
             "cudaMemcpyAsync");
  wait_stream(stream_, deadline);
  std::memcpy(bytes, host_staging_, n);
}

void NcclCommunicator::do_all_reduce_max_device(float* data, size_t n, void* stream) {
  DeviceGuard guard(device_);
  const Deadline deadline(timeout());
  void* s = stream ? stream : stream_;
  enqueued(ncclAllReduce(data, data, n, ncclFloat32, ncclMax, comm_, as_stream(s)), "ncclAllReduce",
           deadline);
  wait_stream(s, deadline);
}

void NcclCommunicator::do_send_device(const void* bytes, size_t n, int peer, void* stream) {
  DeviceGuard guard(device_);
  const Deadline deadline(timeout());
  void* s = stream ? stream : stream_;
  enqueued(ncclSend(bytes, n, ncclUint8, peer, comm_, as_stream(s)), "ncclSend", deadline);
  wait_stream(s, deadline);
}

void NcclCommunicator::do_recv_device(void* bytes, size_t n, int peer, void* stream) {
  DeviceGuard guard(device_);
  const Deadline deadline(timeout());
  void* s = stream ? stream : stream_;
  enqueued(ncclRecv(bytes, n, ncclUint8, peer, comm_, as_stream(s)), "ncclRecv", deadline);
  wait_stream(s, deadline);
}

}  // namespace moequant::parallel
