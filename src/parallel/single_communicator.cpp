#include "moequant/parallel/single_communicator.h"

#include "moequant/common/error.h"

namespace moequant::parallel {

SingleCommunicator::SingleCommunicator(std::string name, int world_rank,
                                       std::chrono::milliseconds timeout)
    : Communicator(0, 1, std::move(name), world_rank, timeout) {}

std::unique_ptr<Communicator> SingleCommunicator::do_split(int, int, const std::string& name) {
  return std::make_unique<SingleCommunicator>(name, world_rank(), timeout());
}

void SingleCommunicator::do_send(const void*, size_t, int peer) {
  MQ_THROW(name(), " send: a single-rank group has no peer ", peer);
}

void SingleCommunicator::do_recv(void*, size_t, int peer) {
  MQ_THROW(name(), " recv: a single-rank group has no peer ", peer);
}

}  // namespace moequant::parallel
