#include "moequant/parallel/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <exception>
#include <mutex>
#include <unordered_set>

#include "moequant/common/error.h"
#include "mpi_runtime.h"

namespace moequant::parallel {

namespace {

// MPI counts are ints: larger transfers go in chunks of at most 2^30 elements. Always at least
// one chunk, so that a zero-size operation is still issued and matched on every rank.
struct Chunk {
  size_t offset;
  int count;
};
std::vector<Chunk> chunks(size_t n) {
  constexpr size_t kMaxChunk = size_t{1} << 30;
  std::vector<Chunk> out;
  size_t off = 0;
  do {
    const size_t c = std::min(kMaxChunk, n - off);
    out.push_back({off, static_cast<int>(c)});
    off += c;
  } while (off < n);
  return out;
}

std::string mpi_error_string(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) return str_cat("MPI error ", rc);
  return std::string(text, static_cast<size_t>(len));
}

void require_mpi_initialized(const std::string& name) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  MQ_CHECK(initialized && !finalized, name,
           ": MPI is not initialized (call MPI_Init first, or use MpiCommunicator::world())");
}

// Polls one request until done or the deadline; false on timeout. Throws on MPI errors.
bool poll_one(MPI_Request& req, const Deadline& deadline, const std::string& what) {
  int rc = MPI_SUCCESS;
  const bool done = poll_until(deadline, [&] {
    int flag = 0;
    rc = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
    return rc != MPI_SUCCESS || flag != 0;
  });
  MQ_CHECK(rc == MPI_SUCCESS, what, " failed: ", mpi_error_string(rc));
  return done;
}

// Our communicators report peer failures as return codes instead of aborting inside MPI.
MPI_Comm make_ours(MPI_Comm comm) {
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  return comm;
}

// Every operation's state is listed here from its start until it completes. An operation
// abandoned after a timeout or an error stays listed for the rest of the process: its requests
// may still complete later (a stalled peer wakes up) and write into its buffers, so it is kept
// on purpose, reachable (not a leak to LeakSanitizer).
std::mutex& operations_mutex() {
  static std::mutex m;
  return m;
}
std::unordered_set<const void*>& operations_in_flight() {
  static auto* ops = new std::unordered_set<const void*>;  // never destroyed: see above
  return *ops;
}

template <typename T>
T* begin_operation() {
  T* p = new T;
  const std::lock_guard<std::mutex> lock(operations_mutex());
  operations_in_flight().insert(p);
  return p;
}

// Frees an operation's state when it completes (the scope is left normally); on an exception
// the state stays listed and alive.
template <typename T>
class CompletedOperation {
 public:
  explicit CompletedOperation(T* p) : p_(p), exceptions_(std::uncaught_exceptions()) {}
  ~CompletedOperation() {
    if (std::uncaught_exceptions() > exceptions_) return;  // abandoned: stays listed and alive
    {
      const std::lock_guard<std::mutex> lock(operations_mutex());
      operations_in_flight().erase(p_);
    }
    delete p_;
  }
  CompletedOperation(const CompletedOperation&) = delete;
  CompletedOperation& operator=(const CompletedOperation&) = delete;

 private:
  T* p_;
  const int exceptions_;
};

}  // namespace

// Requests of one operation and the buffers they use (begin_operation / CompletedOperation: freed
// only once every request has completed).
struct MpiCommunicator::Pending {
  std::vector<MPI_Request> reqs;
  std::vector<char> staging;
  std::vector<char> staging2;
  std::vector<int64_t> sizes;
  std::vector<int> counts, displs;
};

MpiCommunicator::MpiCommunicator(MPI_Comm comm, bool owned, const std::string& name,
                                 std::chrono::milliseconds timeout,
                                 std::shared_ptr<MpiRuntime> runtime)
    : Communicator(
          [&] {
            int r = 0;
            MPI_Comm_rank(comm, &r);
            return r;
          }(),
          [&] {
            int s = 0;
            MPI_Comm_size(comm, &s);
            return s;
          }(),
          name, MpiRuntime::world_rank_or_unknown(), timeout),
      comm_(comm),
      owned_(owned),
      runtime_(std::move(runtime)) {}

MpiCommunicator::~MpiCommunicator() {
  // A failed communicator may still have abandoned requests in flight: leave it to the process
  // end. Never free what the host owns, nor anything after MPI_Finalize.
  if (!owned_ || failed()) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::wrap(MPI_Comm comm, const std::string& name,
                                                       std::chrono::milliseconds timeout) {
  require_mpi_initialized(name);
  MQ_CHECK(comm != MPI_COMM_NULL, name, ": cannot wrap MPI_COMM_NULL");
  return std::unique_ptr<MpiCommunicator>(
      new MpiCommunicator(comm, false, name, timeout, MpiRuntime::acquire()));
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::duplicate(MPI_Comm comm, const std::string& name,
                                                            std::chrono::milliseconds timeout) {
  require_mpi_initialized(name);
  MQ_CHECK(comm != MPI_COMM_NULL, name, ": cannot duplicate MPI_COMM_NULL");
  auto runtime = MpiRuntime::acquire();
  // MPI may write the new handle when the request completes: after a timeout that may still
  // happen, so the handle lives on the heap and is leaked then.
  auto* dup = new MPI_Comm(MPI_COMM_NULL);
  MPI_Request req = MPI_REQUEST_NULL;
  const int rc = MPI_Comm_idup(comm, dup, &req);
  MQ_CHECK(rc == MPI_SUCCESS, name, " MPI_Comm_idup failed: ", mpi_error_string(rc));
  if (!poll_one(req, Deadline(timeout), str_cat(name, " MPI_Comm_idup"))) {
    MpiRuntime::note_failure();
    throw Error(timeout_message(name, "duplicate", timeout, MpiRuntime::world_rank_or_unknown()));
  }
  const MPI_Comm handle = *dup;
  delete dup;
  return std::unique_ptr<MpiCommunicator>(
      new MpiCommunicator(make_ours(handle), true, name, timeout, std::move(runtime)));
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::world(const std::string& name,
                                                        std::chrono::milliseconds timeout) {
  const auto runtime = MpiRuntime::acquire();       // initializes MPI when needed
  return duplicate(MPI_COMM_WORLD, name, timeout);  // which holds the runtime from then on
}

void MpiCommunicator::mpi_fail(int rc, const std::string& call) {
  MpiRuntime::note_failure();
  fail(current_op(), str_cat(call, ": ", mpi_error_string(rc)));
}

void MpiCommunicator::check(int rc, const char* call) {
  if (rc != MPI_SUCCESS) mpi_fail(rc, call);
}

void MpiCommunicator::wait(Pending& p, const Deadline& deadline, MPI_Status* statuses) {
  int rc = MPI_SUCCESS;
  const int n = static_cast<int>(p.reqs.size());
  const bool done = poll_until(deadline, [&] {
    int flag = 0;
    rc = MPI_Testall(n, p.reqs.data(), &flag, statuses ? statuses : MPI_STATUSES_IGNORE);
    return rc != MPI_SUCCESS || flag != 0;
  });
  if (rc == MPI_ERR_IN_STATUS && statuses) {
    for (int i = 0; i < n; ++i)
      if (statuses[i].MPI_ERROR != MPI_SUCCESS && statuses[i].MPI_ERROR != MPI_ERR_PENDING)
        rc = statuses[i].MPI_ERROR;
  }
  if (rc != MPI_SUCCESS) mpi_fail(rc, "MPI_Testall");
  if (!done) {
    MpiRuntime::note_failure();
    fail_timeout(current_op());
  }
}

void MpiCommunicator::do_all_reduce(void* data, size_t n, ElemType type, ReduceOp op) {
  const size_t elem = elem_size(type);
  const MPI_Datatype dtype = type == ElemType::kFloat32   ? MPI_FLOAT
                             : type == ElemType::kFloat64 ? MPI_DOUBLE
                                                          : MPI_INT64_T;
  const MPI_Op mop = op == ReduceOp::kMax ? MPI_MAX : MPI_SUM;
  const Deadline deadline(timeout());
  Pending* p = begin_operation<Pending>();
  p->staging.resize(n * elem);
  if (n) std::memcpy(p->staging.data(), data, n * elem);
  for (const Chunk& c : chunks(n)) {
    p->reqs.emplace_back();
    check(MPI_Iallreduce(MPI_IN_PLACE, p->staging.data() + c.offset * elem, c.count, dtype, mop,
                         comm_, &p->reqs.back()),
          "MPI_Iallreduce");
  }
  wait(*p, deadline);
  const CompletedOperation<Pending> done(p);
  if (n) std::memcpy(data, p->staging.data(), n * elem);
}

void MpiCommunicator::do_broadcast(void* bytes, size_t n, int root) {
  const Deadline deadline(timeout());
  Pending* p = begin_operation<Pending>();
  p->staging.resize(n);
  if (rank() == root && n) std::memcpy(p->staging.data(), bytes, n);
  for (const Chunk& c : chunks(n)) {
    p->reqs.emplace_back();
    check(MPI_Ibcast(p->staging.data() + c.offset, c.count, MPI_BYTE, root, comm_, &p->reqs.back()),
          "MPI_Ibcast");
  }
  wait(*p, deadline);
  const CompletedOperation<Pending> done(p);
  if (rank() != root && n) std::memcpy(bytes, p->staging.data(), n);
}

std::vector<std::string> MpiCommunicator::do_all_gather_bytes(const std::string& local) {
  const Deadline deadline(timeout());  // one deadline for both steps
  Pending* p = begin_operation<Pending>();
  // Step 1: every rank's size.
  p->sizes.assign(static_cast<size_t>(size()), 0);
  p->sizes[static_cast<size_t>(rank())] = static_cast<int64_t>(local.size());
  p->reqs.emplace_back();
  check(MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, p->sizes.data(), 1, MPI_INT64_T, comm_,
                       &p->reqs.back()),
        "MPI_Iallgather");
  wait(*p, deadline);
  // Step 2: the bytes. Every rank sees the same sizes, so all agree on the limit check.
  int64_t total = 0;
  p->counts.resize(p->sizes.size());
  p->displs.resize(p->sizes.size());
  for (size_t i = 0; i < p->sizes.size(); ++i) {
    p->displs[i] = static_cast<int>(total);
    total += p->sizes[i];
    MQ_CHECK(total <= INT_MAX, name(), " all_gather_bytes: ", total,
             "+ bytes in total exceed MPI's 2 GiB limit for one gather");
    p->counts[i] = static_cast<int>(p->sizes[i]);
  }
  p->staging.assign(local.begin(), local.end());
  p->staging2.resize(static_cast<size_t>(total));
  p->reqs.assign(1, MPI_REQUEST_NULL);
  check(MPI_Iallgatherv(p->staging.data(), static_cast<int>(local.size()), MPI_BYTE,
                        p->staging2.data(), p->counts.data(), p->displs.data(), MPI_BYTE, comm_,
                        &p->reqs.back()),
        "MPI_Iallgatherv");
  wait(*p, deadline);
  const CompletedOperation<Pending> done(p);
  std::vector<std::string> out(p->sizes.size());
  for (size_t i = 0; i < out.size(); ++i)
    out[i].assign(p->staging2.data() + p->displs[i], static_cast<size_t>(p->counts[i]));
  return out;
}

std::vector<std::string> MpiCommunicator::do_all_to_all_bytes(
    const std::vector<std::string>& to_each) {
  const Deadline deadline(timeout());  // one deadline for both steps
  Pending* p = begin_operation<Pending>();
  const size_t n = static_cast<size_t>(size());
  // Step 1: what each rank sends to each other rank (one size per pair).
  std::vector<int64_t> send_sizes(n);
  for (size_t r = 0; r < n; ++r) send_sizes[r] = static_cast<int64_t>(to_each[r].size());
  p->sizes.assign(n, 0);
  p->reqs.emplace_back();
  check(MPI_Ialltoall(send_sizes.data(), 1, MPI_INT64_T, p->sizes.data(), 1, MPI_INT64_T, comm_,
                      &p->reqs.back()),
        "MPI_Ialltoall");
  wait(*p, deadline);
  // Step 2: the bytes, packed by destination and received packed by source.
  std::vector<int> send_counts(n), send_displs(n);
  int64_t send_total = 0, recv_total = 0;
  p->counts.resize(n);
  p->displs.resize(n);
  for (size_t r = 0; r < n; ++r) {
    send_displs[r] = static_cast<int>(send_total);
    send_counts[r] = static_cast<int>(send_sizes[r]);
    send_total += send_sizes[r];
    p->displs[r] = static_cast<int>(recv_total);
    p->counts[r] = static_cast<int>(p->sizes[r]);
    recv_total += p->sizes[r];
  }
  MQ_CHECK(send_total <= INT_MAX && recv_total <= INT_MAX, name(),
           " all_to_all_bytes: ", std::max(send_total, recv_total),
           " bytes exceed MPI's 2 GiB limit for one exchange");
  p->staging.resize(static_cast<size_t>(send_total));
  for (size_t r = 0; r < n; ++r)
    if (!to_each[r].empty())
      std::memcpy(p->staging.data() + send_displs[r], to_each[r].data(), to_each[r].size());
  p->staging2.resize(static_cast<size_t>(recv_total));
  p->reqs.assign(1, MPI_REQUEST_NULL);
  check(MPI_Ialltoallv(p->staging.data(), send_counts.data(), send_displs.data(), MPI_BYTE,
                       p->staging2.data(), p->counts.data(), p->displs.data(), MPI_BYTE, comm_,
                       &p->reqs.back()),
        "MPI_Ialltoallv");
  wait(*p, deadline);
  const CompletedOperation<Pending> done(p);
  std::vector<std::string> out(n);
  for (size_t r = 0; r < n; ++r)
    out[r].assign(p->staging2.data() + p->displs[r], static_cast<size_t>(p->counts[r]));
  return out;
}

void MpiCommunicator::do_barrier() {
  const Deadline deadline(timeout());
  Pending* p = begin_operation<Pending>();
  p->reqs.emplace_back();
  check(MPI_Ibarrier(comm_, &p->reqs.back()), "MPI_Ibarrier");
  wait(*p, deadline);
  const CompletedOperation<Pending> done(p);
}

std::unique_ptr<Communicator> MpiCommunicator::do_split(int color, int key,
                                                        const std::string& name) {
  // MPI_Comm_split has no non-blocking form. Agree first under the deadline (this proves every
  // member reached the split, alive) and only then call it.
  const Deadline deadline(timeout());
  Pending* p = begin_operation<Pending>();
  p->sizes.assign(2 * static_cast<size_t>(size()), 0);
  p->sizes[2 * rank()] = color;
  p->sizes[2 * rank() + 1] = key;
  p->reqs.emplace_back();
  check(MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, p->sizes.data(), 2, MPI_INT64_T, comm_,
                       &p->reqs.back()),
        "MPI_Iallgather");
  wait(*p, deadline);
  const CompletedOperation<Pending> done(p);
  MPI_Comm sub = MPI_COMM_NULL;
  check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
  return std::unique_ptr<Communicator>(
      new MpiCommunicator(make_ours(sub), true, name, timeout(), runtime_));
}

void MpiCommunicator::do_send(const void* bytes, size_t n, int peer) {
  const Deadline deadline(timeout());
  Pending* p = begin_operation<Pending>();
  p->staging.resize(n);
  if (n) std::memcpy(p->staging.data(), bytes, n);
  for (const Chunk& c : chunks(n)) {
    p->reqs.emplace_back();
    check(MPI_Isend(p->staging.data() + c.offset, c.count, MPI_BYTE, peer, kTag, comm_,
                    &p->reqs.back()),
          "MPI_Isend");
  }
  wait(*p, deadline);
  const CompletedOperation<Pending> done(p);
}

void MpiCommunicator::do_recv(void* bytes, size_t n, int peer) {
  const Deadline deadline(timeout());
  Pending* p = begin_operation<Pending>();
  p->staging.resize(n);
  const std::vector<Chunk> parts = chunks(n);
  for (const Chunk& c : parts) {
    p->reqs.emplace_back();
    check(MPI_Irecv(p->staging.data() + c.offset, c.count, MPI_BYTE, peer, kTag, comm_,
                    &p->reqs.back()),
          "MPI_Irecv");
  }
  std::vector<MPI_Status> statuses(p->reqs.size());
  wait(*p, deadline, statuses.data());
  const CompletedOperation<Pending> done(p);
  for (size_t i = 0; i < statuses.size(); ++i) {
    int got = 0;
    MPI_Get_count(&statuses[i], MPI_BYTE, &got);
    if (got != parts[i].count)
      fail(current_op(), str_cat("received ", got, " bytes from peer ", peer, " where ",
                                 parts[i].count, " were expected (sender and receiver disagree)"));
  }
  if (n) std::memcpy(bytes, p->staging.data(), n);
}

}  // namespace moequant::parallel
