// Sharing a small blob through torchrun's c10d::TCPStore (private; the only torch-facing code of
// moequant_parallel, compiled only with MOEQUANT_HAS_NCCL since only the NCCL bootstrap needs it).
// This header itself is torch-free.
#pragma once

#include <chrono>
#include <string>

#include "moequant/parallel/bootstrap.h"

namespace moequant::parallel {

// Rank 0 publishes `value` under `key` (inside our prefix "moequant/<run id>/<restart>/"); every
// rank returns it. With launch.agent_store every rank is a client of the agent's store at
// MASTER_ADDR:MASTER_PORT, else rank 0 hosts the store and waits until every rank has read.
// Throws moequant::Error naming the address and the timeout on failure.
std::string share_through_tcp_store(const LaunchInfo& launch, const std::string& key,
                                    const std::string& value, std::chrono::milliseconds timeout);

}  // namespace moequant::parallel
