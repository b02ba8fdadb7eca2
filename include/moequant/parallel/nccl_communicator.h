// NcclCommunicator: the GPU backend (compiled only when MOEQUANT_HAS_NCCL).
//
// Communicators we create are non-blocking (ncclConfig_t::blocking = 0): no NCCL call can block
// the host, and every operation is polled (ncclCommGetAsyncError, then cudaStreamQuery) against
// its deadline; on expiry or an asynchronous error the communicator is aborted (ncclCommAbort)
// and the call throws. Host-buffer calls stage through a pinned host buffer and a device buffer
// on the communicator's own stream; the *_device calls use the caller's device memory.
//
// A wrapped communicator stays the host's: it is never finalized, destroyed or aborted here (on a
// failure we throw and the host decides; aborting it under the host's feet would make its own
// ncclCommDestroy a double free).
#pragma once

#ifndef MOEQUANT_HAS_NCCL
#error "nccl_communicator.h needs a build with NCCL (MOEQUANT_HAS_NCCL)"
#endif

#include <nccl.h>

#include <memory>

#include "moequant/parallel/communicator.h"
#include "moequant/parallel/deadline.h"

namespace moequant::parallel {

class NcclCommunicator final : public Communicator {
 public:
  // Every member calls this with the same `id` (ncclGetUniqueId on one rank, shared by the
  // bootstrap). `device` is this rank's CUDA device; `world_rank` labels messages.
  static std::unique_ptr<NcclCommunicator> create(
      const ncclUniqueId& id, int nranks, int rank, int device, const std::string& name,
      int world_rank, std::chrono::milliseconds timeout = default_collective_timeout());

  // Uses `comm`, owned by the host and alive longer than this object. `stream` (a cudaStream_t)
  // carries the host-buffer calls; nullptr: a stream of our own on the communicator's device.
  static std::unique_ptr<NcclCommunicator> wrap(
      ncclComm_t comm, const std::string& name, int world_rank, void* stream = nullptr,
      std::chrono::milliseconds timeout = default_collective_timeout());

  ~NcclCommunicator() override;

  const char* backend() const override { return "nccl"; }
  bool supports_device_buffers() const override { return true; }
  ncclComm_t handle() const { return comm_; }
  int device() const { return device_; }
  bool owns_handle() const { return owned_; }

  // Keeps `dependency` alive as long as this communicator and the ones split from it (the MPI
  // runtime that bootstrapped it, for instance).
  void keep_alive(std::shared_ptr<void> dependency) { keep_alive_ = std::move(dependency); }

 protected:
  void do_all_reduce(void* data, size_t n, ElemType type, ReduceOp op) override;
  void do_broadcast(void* bytes, size_t n, int root) override;
  std::vector<std::string> do_all_gather_bytes(const std::string& local) override;
  std::vector<std::string> do_all_to_all_bytes(const std::vector<std::string>& to_each) override;
  void do_barrier() override;
  std::unique_ptr<Communicator> do_split(int color, int key, const std::string& name) override;
  void do_send(const void* bytes, size_t n, int peer) override;
  void do_recv(void* bytes, size_t n, int peer) override;
  void do_all_reduce_max_device(float* data, size_t n, void* stream) override;
  void do_send_device(const void* bytes, size_t n, int peer, void* stream) override;
  void do_recv_device(void* bytes, size_t n, int peer, void* stream) override;
  void do_abort() noexcept override;

 private:
  NcclCommunicator(ncclComm_t comm, bool owned, int device, void* stream, const std::string& name,
                   int world_rank, std::chrono::milliseconds timeout);
  // Checks the result of an NCCL call; ncclInProgress: polls until the call is enqueued.
  void enqueued(ncclResult_t r, const char* call, const Deadline& deadline);
  // Polls until all work on `stream` is done, watching the communicator's asynchronous errors.
  void wait_stream(void* stream, const Deadline& deadline);
  void check_cuda(int err, const char* call);
  [[noreturn]] void fail_nccl(ncclResult_t r, const char* call);
  [[noreturn]] void abort_and_timeout();
  // Grows the pinned and device staging buffers to `bytes`.
  void reserve(size_t bytes);

  ncclComm_t comm_;
  bool owned_;
  int device_;
  void* stream_;  // cudaStream_t
  bool own_stream_;
  void* host_staging_ = nullptr;  // pinned
  void* device_staging_ = nullptr;
  size_t staging_bytes_ = 0;
  std::shared_ptr<void> keep_alive_;
};

}  // namespace moequant::parallel
