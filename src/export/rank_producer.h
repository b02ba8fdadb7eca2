// One rank's share of an export: every planned tensor it produces, written straight into place in
// the pre-sized output files by a few producer threads (read -> quantize -> pwrite, overlapped
// across threads), while the main thread walks the plan in order, doing the ETP transfers of
// units this rank holds a shard of and handing work to the threads through a bounded queue.
// Internal to the exporter.
#pragma once

#include <string>
#include <vector>

#include "moequant/export/export_plan.h"
#include "moequant/export/exporter.h"

namespace moequant::export_detail {

struct RankShare {
  std::vector<std::string> written;    // names of the tensors written here
  std::vector<std::string> fallbacks;  // quantizers that fell back (weight or input amax)
  std::string error;                   // the first failure here ("" when none)
  ExportRankStats stats;
};

// Produces this rank's tensors into the files under `dir` (created by rank 0, sized as planned),
// with `threads` producer threads. A failure inside a thread stops further work here but not the
// ETP transfers peers wait on; it comes back in RankShare::error for the caller to agree on.
// A failure of a transfer itself throws (the peer is gone).
RankShare produce_rank_share(const ModelConfig& config, const parallel::ParallelState& ps,
                             parallel::Communicator& world, const ExportSource& source,
                             const ExportOptions& options, const ExportPlan& plan,
                             const std::string& dir, int threads);

}  // namespace moequant::export_detail
