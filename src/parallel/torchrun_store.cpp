// layering: a library of its own over LibTorch (moequant_parallel_torchrun, torchrun.cmake),
// so that moequant_parallel itself builds without it: the only torch (narrow c10d) headers there.
#include "torchrun_store.h"

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <thread>

#include "moequant/common/error.h"
#include "moequant/parallel/deadline.h"

namespace moequant::parallel {

namespace {

// Self-contained on purpose: this library is linked after moequant_parallel, so it cannot use
// moequant_parallel's own functions (deadline.h's inline Deadline is fine, format_seconds is not).
std::string seconds(std::chrono::milliseconds d) {
  return str_cat(static_cast<double>(d.count()) / 1000.0, " s");
}

std::string share(const LaunchInfo& l, const std::string& key, const std::string& value,
                  std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<uint16_t>(l.master_port);
  // The agent's store already listens at MASTER_ADDR:MASTER_PORT; host one only without it.
  opts.isServer = !l.agent_store && l.rank == 0;
  opts.waitWorkers = false;
  opts.timeout = timeout;
  c10d::TCPStore store(l.master_addr, opts);

  const std::string full = str_cat("moequant/", l.run_id, "/", l.restart_count, "/", key);
  const std::string readers = full + "/readers";
  if (l.rank == 0) store.set(full, std::vector<uint8_t>(value.begin(), value.end()));
  const std::vector<uint8_t> got = store.get(full);  // waits for rank 0 up to the timeout
  store.add(readers, 1);
  if (opts.isServer) {
    // The store dies with this object: keep serving until every rank has read.
    const Deadline deadline(timeout);
    while (store.add(readers, 0) < l.world_size) {
      MQ_CHECK(!deadline.expired(), "only ", store.add(readers, 0), " of ", l.world_size,
               " ranks read '", full, "' within ", seconds(timeout));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return std::string(got.begin(), got.end());
}

}  // namespace

std::string share_through_tcp_store(const LaunchInfo& l, const std::string& key,
                                    const std::string& value, std::chrono::milliseconds timeout) {
  const std::string where = str_cat(
      "TCPStore at ", l.master_addr, ":", l.master_port,
      l.agent_store ? " (torchrun agent's store)" : " (hosted by rank 0)", " on rank ", l.rank);
  try {
    return share(l, key, value, timeout);
  } catch (const c10::Error& e) {
    MQ_THROW(where, ": ", e.what_without_backtrace(), " (timeout ", seconds(timeout), ")");
  } catch (const Error& e) {
    MQ_THROW(where, ": ", e.what());
  } catch (const std::exception& e) {
    MQ_THROW(where, ": ", e.what(), " (timeout ", seconds(timeout), ")");
  }
}

}  // namespace moequant::parallel
