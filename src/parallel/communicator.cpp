#include "moequant/parallel/communicator.h"

#include <exception>

#include "moequant/common/error.h"
#include "moequant/parallel/deadline.h"

namespace moequant::parallel {

Communicator::Communicator(int rank, int size, std::string name, int world_rank,
                           std::chrono::milliseconds timeout)
    : rank_(rank), size_(size), name_(std::move(name)), world_rank_(world_rank), timeout_(timeout) {
  MQ_CHECK(size_ >= 1 && rank_ >= 0 && rank_ < size_, "communicator ", name_, ": rank ", rank_,
           " is outside size ", size_);
  MQ_CHECK(timeout_.count() > 0, "communicator ", name_, ": timeout must be positive");
}

Communicator::~Communicator() = default;

void Communicator::set_timeout(std::chrono::milliseconds timeout) {
  MQ_CHECK(timeout.count() > 0, name_, " timeout must be positive (got ", timeout.count(), " ms)");
  timeout_ = timeout;
}

void Communicator::begin(const char* op, bool collective) {
  op_ = op;
  MQ_CHECK(failure_.empty(), name_, " ", op, " on rank ", world_rank_,
           ": the communicator is unusable after an earlier failure: ", failure_);
  if (collective)
    ++collectives_;
  else
    ++p2p_;
}

void Communicator::fail(const std::string& op, const std::string& what) {
  const std::string msg = str_cat(name_, " ", op, " failed on rank ", world_rank_, ": ", what);
  if (failure_.empty()) failure_ = msg;
  throw Error(msg);
}

void Communicator::fail_timeout(const std::string& op) {
  const std::string msg = timeout_message(name_, op, timeout_, world_rank_);
  if (failure_.empty()) failure_ = msg;
  throw Error(msg);
}

void Communicator::abort() noexcept {
  if (failure_.empty()) failure_ = str_cat(name_, " was aborted on rank ", world_rank_);
  do_abort();
}

namespace {
// Runs a backend call; any exception marks the communicator failed (its state may now differ
// from its peers'), then propagates.
template <typename F>
auto guarded(std::string& failure, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    if (failure.empty()) failure = e.what();
    throw;
  }
}
}  // namespace

void Communicator::all_reduce_max(float* data, size_t n) {
  begin("all_reduce_max", true);
  MQ_CHECK(data != nullptr || n == 0, name_, " all_reduce_max: null buffer");
  guarded(failure_, [&] { do_all_reduce(data, n, ElemType::kFloat32, ReduceOp::kMax); });
}

void Communicator::all_reduce_max(int64_t* data, size_t n) {
  begin("all_reduce_max", true);
  MQ_CHECK(data != nullptr || n == 0, name_, " all_reduce_max: null buffer");
  guarded(failure_, [&] { do_all_reduce(data, n, ElemType::kInt64, ReduceOp::kMax); });
}

void Communicator::all_reduce_sum(int64_t* data, size_t n) {
  begin("all_reduce_sum", true);
  MQ_CHECK(data != nullptr || n == 0, name_, " all_reduce_sum: null buffer");
  guarded(failure_, [&] { do_all_reduce(data, n, ElemType::kInt64, ReduceOp::kSum); });
}

void Communicator::all_reduce_sum(float* data, size_t n) {
  begin("all_reduce_sum", true);
  MQ_CHECK(data != nullptr || n == 0, name_, " all_reduce_sum: null buffer");
  guarded(failure_, [&] { do_all_reduce(data, n, ElemType::kFloat32, ReduceOp::kSum); });
}

void Communicator::all_reduce_sum(double* data, size_t n) {
  begin("all_reduce_sum", true);
  MQ_CHECK(data != nullptr || n == 0, name_, " all_reduce_sum: null buffer");
  guarded(failure_, [&] { do_all_reduce(data, n, ElemType::kFloat64, ReduceOp::kSum); });
}

void Communicator::broadcast(void* bytes, size_t n, int root) {
  begin("broadcast", true);
  MQ_CHECK(root >= 0 && root < size_, name_, " broadcast: root ", root, " is outside size ", size_);
  MQ_CHECK(bytes != nullptr || n == 0, name_, " broadcast: null buffer");
  guarded(failure_, [&] { do_broadcast(bytes, n, root); });
}

std::vector<std::string> Communicator::all_gather_bytes(const std::string& local) {
  begin("all_gather_bytes", true);
  return guarded(failure_, [&] { return do_all_gather_bytes(local); });
}

std::vector<std::string> Communicator::all_to_all_bytes(const std::vector<std::string>& to_each) {
  begin("all_to_all_bytes", true);
  MQ_CHECK(static_cast<int>(to_each.size()) == size_, name_, " all_to_all_bytes: ", to_each.size(),
           " messages for ", size_, " ranks");
  return guarded(failure_, [&] { return do_all_to_all_bytes(to_each); });
}

void Communicator::barrier() {
  begin("barrier", true);
  guarded(failure_, [&] { do_barrier(); });
}

std::unique_ptr<Communicator> Communicator::split(int color, int key, const std::string& name) {
  begin("split", true);
  MQ_CHECK(color >= 0, name_, " split into ", name, ": color must be >= 0 (got ", color, ")");
  auto child = guarded(failure_, [&] { return do_split(color, key, name); });
  child->set_timeout(timeout_);
  return child;
}

void Communicator::send(const void* bytes, size_t n, int peer) {
  begin("send", false);
  MQ_CHECK(peer >= 0 && peer < size_, name_, " send: peer ", peer, " is outside size ", size_);
  MQ_CHECK(peer != rank_, name_, " send: rank ", rank_, " cannot send to itself (copy locally)");
  MQ_CHECK(bytes != nullptr || n == 0, name_, " send: null buffer");
  guarded(failure_, [&] { do_send(bytes, n, peer); });
}

void Communicator::recv(void* bytes, size_t n, int peer) {
  begin("recv", false);
  MQ_CHECK(peer >= 0 && peer < size_, name_, " recv: peer ", peer, " is outside size ", size_);
  MQ_CHECK(peer != rank_, name_, " recv: rank ", rank_,
           " cannot receive from itself (copy locally)");
  MQ_CHECK(bytes != nullptr || n == 0, name_, " recv: null buffer");
  guarded(failure_, [&] { do_recv(bytes, n, peer); });
}

void Communicator::require_device_buffers(const char* op) const {
  MQ_CHECK(supports_device_buffers(), name_, " ", op, ": the ", backend(),
           " backend works on host memory only");
}

void Communicator::all_reduce_max_device(float* device_data, size_t n, void* stream) {
  require_device_buffers("all_reduce_max_device");
  begin("all_reduce_max_device", true);
  guarded(failure_, [&] { do_all_reduce_max_device(device_data, n, stream); });
}

void Communicator::send_device(const void* device_bytes, size_t n, int peer, void* stream) {
  require_device_buffers("send_device");
  begin("send_device", false);
  MQ_CHECK(peer >= 0 && peer < size_ && peer != rank_, name_, " send_device: bad peer ", peer,
           " (size ", size_, ", rank ", rank_, ")");
  guarded(failure_, [&] { do_send_device(device_bytes, n, peer, stream); });
}

void Communicator::recv_device(void* device_bytes, size_t n, int peer, void* stream) {
  require_device_buffers("recv_device");
  begin("recv_device", false);
  MQ_CHECK(peer >= 0 && peer < size_ && peer != rank_, name_, " recv_device: bad peer ", peer,
           " (size ", size_, ", rank ", rank_, ")");
  guarded(failure_, [&] { do_recv_device(device_bytes, n, peer, stream); });
}

// Reached only if a backend claims device support without implementing it.
void Communicator::do_all_reduce_max_device(float*, size_t, void*) {
  MQ_THROW(name_, " all_reduce_max_device is not implemented by the ", backend(), " backend");
}

void Communicator::do_send_device(const void*, size_t, int, void*) {
  MQ_THROW(name_, " send_device is not implemented by the ", backend(), " backend");
}

void Communicator::do_recv_device(void*, size_t, int, void*) {
  MQ_THROW(name_, " recv_device is not implemented by the ", backend(), " backend");
}

}  // namespace moequant::parallel
