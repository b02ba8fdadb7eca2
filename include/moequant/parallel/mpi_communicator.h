// MpiCommunicator: the CPU backend, host buffers over MPI.
//
// Every operation is non-blocking underneath (MPI_Iallreduce, MPI_Ibcast, MPI_Iallgather(v),
// MPI_Ibarrier, MPI_Isend/MPI_Irecv) and polled with MPI_Test until the deadline, so a dead or
// stalled peer yields an error instead of a hang. Data travels through staging buffers owned by
// the operation: when a deadline expires the abandoned request may still touch its buffer, so
// the buffer is leaked on purpose rather than handed back to the caller.
//
// Ownership: communicators we create (duplicate, world, split) carry MPI_ERRORS_RETURN, so MPI
// reports peer failures as return codes, and are freed by the destructor. A wrapped communicator
// stays the host's: never freed, its error handler untouched.
#pragma once

#include <mpi.h>

#include <memory>

#include "moequant/parallel/communicator.h"
#include "moequant/parallel/deadline.h"

namespace moequant::parallel {

class MpiRuntime;

class MpiCommunicator final : public Communicator {
 public:
  // Uses `comm` directly; the caller owns it and keeps it alive longer than this object. MPI must
  // be initialized. Point-to-point messages use tag kTag on it.
  static std::unique_ptr<MpiCommunicator> wrap(
      MPI_Comm comm, const std::string& name,
      std::chrono::milliseconds timeout = default_collective_timeout());
  // A private duplicate of `comm` (MPI_Comm_idup, under the deadline), freed by the destructor:
  // our messages can never match the host's. MPI must be initialized.
  static std::unique_ptr<MpiCommunicator> duplicate(
      MPI_Comm comm, const std::string& name,
      std::chrono::milliseconds timeout = default_collective_timeout());
  // A duplicate of MPI_COMM_WORLD. Initializes MPI when nobody has (MPI_Init_thread); MPI is then
  // finalized when the last communicator created from this one is destroyed.
  static std::unique_ptr<MpiCommunicator> world(
      const std::string& name = "WORLD",
      std::chrono::milliseconds timeout = default_collective_timeout());

  ~MpiCommunicator() override;

  const char* backend() const override { return "mpi"; }
  MPI_Comm handle() const { return comm_; }
  bool owns_handle() const { return owned_; }

  static constexpr int kTag = 32001;

 protected:
  void do_all_reduce(void* data, size_t n, ElemType type, ReduceOp op) override;
  void do_broadcast(void* bytes, size_t n, int root) override;
  std::vector<std::string> do_all_gather_bytes(const std::string& local) override;
  std::vector<std::string> do_all_to_all_bytes(const std::vector<std::string>& to_each) override;
  void do_barrier() override;
  std::unique_ptr<Communicator> do_split(int color, int key, const std::string& name) override;
  void do_send(const void* bytes, size_t n, int peer) override;
  void do_recv(void* bytes, size_t n, int peer) override;

 private:
  struct Pending;
  MpiCommunicator(MPI_Comm comm, bool owned, const std::string& name,
                  std::chrono::milliseconds timeout, std::shared_ptr<MpiRuntime> runtime);
  // Polls every request of `p` until done or the deadline; throws on MPI errors and timeouts.
  void wait(Pending& p, const Deadline& deadline, MPI_Status* statuses = nullptr);
  [[noreturn]] void mpi_fail(int rc, const std::string& call);
  void check(int rc, const char* call);

  MPI_Comm comm_;
  bool owned_;
  std::shared_ptr<MpiRuntime> runtime_;
};

}  // namespace moequant::parallel
