// FaultInjector: a Communicator decorator for the fault tests. It forwards every call to the
// wrapped communicator, except that before the first all_reduce_max it makes this rank die
// (_exit) or stall (sleep), as a crashed or hung peer would.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "moequant/parallel/communicator.h"

namespace moequant::parallel::testing {

class FaultInjector final : public Communicator {
 public:
  enum class Fault { kDie, kStall };

  FaultInjector(std::unique_ptr<Communicator> inner, Fault fault, std::chrono::milliseconds stall)
      : Communicator(inner->rank(), inner->size(), inner->name(), inner->world_rank(),
                     inner->timeout()),
        inner_(std::move(inner)),
        fault_(fault),
        stall_(stall) {}

  const char* backend() const override { return inner_->backend(); }

 protected:
  void do_all_reduce(void* data, size_t n, ElemType type, ReduceOp op) override {
    if (!fired_) {
      fired_ = true;
      std::printf("FAULT-TEST rank %d: %s before %s all_reduce_max\n", world_rank(),
                  fault_ == Fault::kDie ? "dying" : "stalling", name().c_str());
      std::fflush(stdout);
      if (fault_ == Fault::kDie) _exit(9);
      std::this_thread::sleep_for(stall_);
    }
    const bool max = op == ReduceOp::kMax;
    if (type == ElemType::kFloat32 && max)
      inner_->all_reduce_max(static_cast<float*>(data), n);
    else if (type == ElemType::kFloat32)
      inner_->all_reduce_sum(static_cast<float*>(data), n);
    else if (type == ElemType::kFloat64)
      inner_->all_reduce_sum(static_cast<double*>(data), n);
    else if (max)
      inner_->all_reduce_max(static_cast<int64_t*>(data), n);
    else
      inner_->all_reduce_sum(static_cast<int64_t*>(data), n);
  }
  void do_broadcast(void* b, size_t n, int root) override { inner_->broadcast(b, n, root); }
  std::vector<std::string> do_all_gather_bytes(const std::string& s) override {
    return inner_->all_gather_bytes(s);
  }
  std::vector<std::string> do_all_to_all_bytes(const std::vector<std::string>& s) override {
    return inner_->all_to_all_bytes(s);
  }
  void do_barrier() override { inner_->barrier(); }
  std::unique_ptr<Communicator> do_split(int color, int key, const std::string& name) override {
    return inner_->split(color, key, name);
  }
  void do_send(const void* b, size_t n, int peer) override { inner_->send(b, n, peer); }
  void do_recv(void* b, size_t n, int peer) override { inner_->recv(b, n, peer); }

 private:
  std::unique_ptr<Communicator> inner_;
  Fault fault_;
  std::chrono::milliseconds stall_;
  bool fired_ = false;
};

}  // namespace moequant::parallel::testing
