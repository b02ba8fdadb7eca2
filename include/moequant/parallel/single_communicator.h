// SingleCommunicator: a group of one rank. Used when the tool runs alone without a launcher (no
// MPI needed) and for groups of size 1 inside a larger job, where a collective is the identity.
#pragma once

#include "moequant/parallel/communicator.h"
#include "moequant/parallel/deadline.h"

namespace moequant::parallel {

class SingleCommunicator final : public Communicator {
 public:
  explicit SingleCommunicator(std::string name = "WORLD", int world_rank = 0,
                              std::chrono::milliseconds timeout = default_collective_timeout());
  const char* backend() const override { return "single"; }

 protected:
  void do_all_reduce(void*, size_t, ElemType, ReduceOp) override {}
  void do_broadcast(void*, size_t, int) override {}
  std::vector<std::string> do_all_gather_bytes(const std::string& local) override {
    return {local};
  }
  std::vector<std::string> do_all_to_all_bytes(const std::vector<std::string>& to_each) override {
    return to_each;
  }
  void do_barrier() override {}
  std::unique_ptr<Communicator> do_split(int color, int key, const std::string& name) override;
  // Unreachable: the only peer of a rank alone is itself, which Communicator rejects.
  void do_send(const void*, size_t, int) override;
  void do_recv(void*, size_t, int) override;
};

}  // namespace moequant::parallel
