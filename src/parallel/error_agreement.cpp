#include "moequant/parallel/error_agreement.h"

#include <cstdint>

#include "moequant/common/error.h"

namespace moequant::parallel {

void agree_on_error(Communicator& comm, const std::string& local_error) {
  // Common case, one collective: MAX of (size - rank) over the failing ranks, 0 when none failed.
  // (size - rank rather than rank + 1 so that the lowest failing rank wins.)
  int64_t flag = local_error.empty() ? 0 : comm.size() - comm.rank();
  comm.all_reduce_max(&flag, 1);
  if (flag == 0) return;

  // Failure path: gather every rank's world rank and message (one more collective), so that all
  // ranks build the very same text.
  const std::string mine =
      local_error.empty() ? std::string() : str_cat(comm.world_rank(), '\n', local_error);
  const std::vector<std::string> all = comm.all_gather_bytes(mine);
  std::string first;
  int failing = 0;
  for (const std::string& m : all) {
    if (m.empty()) continue;
    if (failing++ == 0) {
      const size_t nl = m.find('\n');
      first = str_cat("rank ", m.substr(0, nl), ": ", m.substr(nl + 1));
    }
  }
  if (failing > 1)
    first += str_cat(" (and ", failing - 1, " more rank", failing > 2 ? "s" : "", " failed)");
  throw AgreedError(first);
}

std::string error_of(const std::function<void()>& step) {
  try {
    step();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

void agreed_step(Communicator& comm, const std::function<void()>& step) {
  agree_on_error(comm, error_of(step));
}

}  // namespace moequant::parallel
