// Communicator: the one small interface every backend implements (docs/design.md, "Communication
// backends"). Backends: MpiCommunicator (host buffers), NcclCommunicator (device buffers; host
// calls stage through the device) and SingleCommunicator (a world of one, no MPI).
//
// Semantics shared by all backends:
//  - Every collective, send and recv has a deadline (timeout(), default from deadline.h). When it
//    expires the call throws moequant::Error "<name> <op> timed out after N s on rank R (a peer
//    died or stalled)". After any failure the communicator is unusable: later calls throw at once
//    (a peer may be gone, and ranks must not drift out of step).
//  - Collectives must be issued by every member in the same order with matching sizes.
//  - Errors name the group (name(), e.g. "EP") and the operation.
//  - Not thread-safe: one thread uses a communicator at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moequant::parallel {

class Communicator {
 public:
  virtual ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Group name used in errors ("WORLD", "EP", ...).
  const std::string& name() const { return name_; }
  // This process's rank in the whole job, used in messages ("on rank R").
  int world_rank() const { return world_rank_; }
  // "mpi", "nccl" or "single".
  virtual const char* backend() const = 0;

  // ---- collectives (host memory) ---------------------------------------------------------------
  void all_reduce_max(float* data, size_t n);
  void all_reduce_max(int64_t* data, size_t n);
  void all_reduce_sum(int64_t* data, size_t n);
  void all_reduce_sum(float* data, size_t n);
  void all_reduce_sum(double* data, size_t n);  // GPTQ's Hessians
  // Copies `n` bytes at `root` into `bytes` on every other rank.
  void broadcast(void* bytes, size_t n, int root);
  // Every rank's `local` (sizes may differ), indexed by rank.
  std::vector<std::string> all_gather_bytes(const std::string& local);
  // Personalized exchange: to_each[r] goes to rank r (sizes may differ, empty is fine); returns
  // what each rank sent to this one, indexed by rank. to_each.size() must equal size().
  std::vector<std::string> all_to_all_bytes(const std::vector<std::string>& to_each);
  void barrier();
  // Collective over this communicator: ranks passing the same color form a new communicator,
  // ordered by (key, rank). `name` becomes its name in errors. color must be >= 0.
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name);

  // ---- point to point (host memory) ------------------------------------------------------------
  // `n` must be equal on both sides. Sending to oneself is not supported (copy locally).
  void send(const void* bytes, size_t n, int peer);
  void recv(void* bytes, size_t n, int peer);

  // ---- device memory (NCCL only; other backends throw) -----------------------------------------
  // `stream` is a cudaStream_t (nullptr: the communicator's own stream). The call returns when
  // the operation has completed on the stream, or throws at the deadline.
  virtual bool supports_device_buffers() const { return false; }
  void all_reduce_max_device(float* device_data, size_t n, void* stream = nullptr);
  void send_device(const void* device_bytes, size_t n, int peer, void* stream = nullptr);
  void recv_device(void* device_bytes, size_t n, int peer, void* stream = nullptr);

  // ---- failure handling ------------------------------------------------------------------------
  // Gives up on this communicator locally: pending operations are abandoned (NCCL:
  // ncclCommAbort on communicators we own), later calls throw. Does not end the job; see
  // job_abort.h for that.
  void abort() noexcept;
  // True after abort() or after a failed operation.
  bool failed() const { return !failure_.empty(); }

  void set_timeout(std::chrono::milliseconds timeout);
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Number of collectives issued on this communicator (each public collective call counts one,
  // whatever the backend does inside), so tests can assert "one collective per group".
  uint64_t collective_count() const { return collectives_; }
  // Number of send/recv calls.
  uint64_t p2p_count() const { return p2p_; }

 protected:
  enum class ElemType { kFloat32, kFloat64, kInt64 };
  static size_t elem_size(ElemType t) { return t == ElemType::kFloat32 ? 4 : 8; }
  enum class ReduceOp { kMax, kSum };

  Communicator(int rank, int size, std::string name, int world_rank,
               std::chrono::milliseconds timeout);

  virtual void do_all_reduce(void* data, size_t n, ElemType type, ReduceOp op) = 0;
  virtual void do_broadcast(void* bytes, size_t n, int root) = 0;
  virtual std::vector<std::string> do_all_gather_bytes(const std::string& local) = 0;
  virtual std::vector<std::string> do_all_to_all_bytes(const std::vector<std::string>& to_each) = 0;
  virtual void do_barrier() = 0;
  virtual std::unique_ptr<Communicator> do_split(int color, int key, const std::string& name) = 0;
  virtual void do_send(const void* bytes, size_t n, int peer) = 0;
  virtual void do_recv(void* bytes, size_t n, int peer) = 0;
  virtual void do_all_reduce_max_device(float* data, size_t n, void* stream);
  virtual void do_send_device(const void* bytes, size_t n, int peer, void* stream);
  virtual void do_recv_device(void* bytes, size_t n, int peer, void* stream);
  // Backend part of abort(): release what can be released without peers. Must not throw.
  virtual void do_abort() noexcept {}

  // For backends: record the failure (first one wins), then throw
  // "<name> <op> failed on rank R: <what>".
  [[noreturn]] void fail(const std::string& op, const std::string& what);
  // Record and throw the timeout message of deadline.h.
  [[noreturn]] void fail_timeout(const std::string& op);

  // Name of the operation in progress, for backends' messages ("all_reduce_max").
  const std::string& current_op() const { return op_; }

 private:
  void begin(const char* op, bool collective);
  void require_device_buffers(const char* op) const;

  int rank_;
  int size_;
  std::string name_;
  int world_rank_;
  std::chrono::milliseconds timeout_;
  std::string failure_;
  std::string op_;
  uint64_t collectives_ = 0;
  uint64_t p2p_ = 0;
};

}  // namespace moequant::parallel
