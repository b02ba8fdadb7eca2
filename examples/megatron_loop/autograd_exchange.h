// The row exchanges of row_exchange.h as autograd functions, so that gradients flow through
// expert-parallel dispatch: each forward moves data one way and its backward moves the
// gradients back the opposite way (an all-to-all's backward is the reverse all-to-all; a
// gather's is a reduce-scatter; a reduce-scatter's is a gather).
//
// Every rank of a group must call these in the same order; backward then visits them in the same
// (reverse) order on every rank, because every rank builds the same graph.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "moequant/parallel/communicator.h"

namespace loop {

// all_to_all_rows with gradients: backward is the all-to-all with the counts swapped.
at::Tensor dispatch_rows(moequant::parallel::Communicator& comm, const at::Tensor& x,
                         const std::vector<int64_t>& send_rows,
                         const std::vector<int64_t>& recv_rows);

// all_gather_rows with gradients (rows[p]: rows of rank p): backward sums the gradients over
// the ranks and keeps this rank's rows.
at::Tensor gather_rows(moequant::parallel::Communicator& comm, const at::Tensor& x,
                       const std::vector<int64_t>& rows);

// reduce_scatter_rows with gradients: backward gathers every rank's gradient rows.
at::Tensor reduce_scatter_sum(moequant::parallel::Communicator& comm, const at::Tensor& x,
                              const std::vector<int64_t>& rows);

}  // namespace loop
