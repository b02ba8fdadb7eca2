// Row exchanges over a moequant Communicator, built from its host-buffer primitives (send, recv,
// all_gather_bytes): the collectives an expert-parallel training step needs and the interface
// does not offer directly (all-to-all, float sums). Tensors may live on any device; the bytes
// travel through host memory (the NCCL backend stages host buffers through the GPU).
//
// Every sum adds the ranks' contributions in rank order, so every rank gets the same bits.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "moequant/parallel/communicator.h"

namespace loop {

using moequant::parallel::Communicator;

// All-to-all of rows: x holds, in group-rank order, send_rows[p] rows for each rank p; the result
// holds, in group-rank order, recv_rows[p] rows from each rank p. send_rows[q] on rank p must
// equal recv_rows[p] on rank q. Pairs exchange in one global order (lowest rank sends first),
// which cannot deadlock even when every send waits for its receiver.
at::Tensor all_to_all_rows(Communicator& comm, const at::Tensor& x,
                           const std::vector<int64_t>& send_rows,
                           const std::vector<int64_t>& recv_rows);

// Every rank's x (row counts may differ, columns and dtype may not), concatenated in rank order.
at::Tensor all_gather_rows(Communicator& comm, const at::Tensor& x);

// The sum over ranks of x (same shape on every rank), then this rank's block of rows: rows[p]
// rows per rank p, in rank order.
at::Tensor reduce_scatter_rows(Communicator& comm, const at::Tensor& x,
                               const std::vector<int64_t>& rows);

// In-place sum over ranks of a flat float tensor (a no-op on a group of one).
void all_reduce_sum(Communicator& comm, at::Tensor& flat);

// Every rank's int64 vector (same length on every rank), concatenated in rank order.
std::vector<int64_t> all_gather_counts(Communicator& comm, const std::vector<int64_t>& local);

}  // namespace loop
