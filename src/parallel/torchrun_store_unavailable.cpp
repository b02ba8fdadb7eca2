// share_through_tcp_store in a build without LibTorch (MOEQUANT_WITH_TORCH=OFF): torchrun's
// store is LibTorch's c10d::TCPStore, so an NCCL world under torchrun is refused by name; mpirun
// and single-rank runs are unaffected.
#include "moequant/common/error.h"
#include "torchrun_store.h"

namespace moequant::parallel {

std::string share_through_tcp_store(const LaunchInfo&, const std::string& key, const std::string&,
                                    std::chrono::milliseconds) {
  MQ_THROW("cannot share '", key,
           "' through torchrun's store: this build has no LibTorch (MOEQUANT_WITH_TORCH=OFF); "
           "launch with mpirun, or rebuild with LibTorch");
}

}  // namespace moequant::parallel
