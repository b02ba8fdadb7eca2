// Seeds derived from the user's seed: every rank draws the same weights and the same global
// batches, whatever the layout, and slices its own part.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace loop {

// A seed for stream `stream` (1 weights, 2 training batches, 3 calibration batches, 4 teacher),
// item `index` (layer, step, batch).
uint64_t mix_seed(uint64_t seed, uint64_t stream, uint64_t index);

// Global batch `index` of `stream` ([tokens, hidden], standard normal), and this data-parallel
// rank's contiguous slice of it, on `device`.
at::Tensor batch_slice(uint64_t seed, uint64_t stream, uint64_t index, int64_t tokens,
                       int64_t hidden, int dp_rank, int dp_size, const at::Device& device);

// The function the model learns: target = x + 0.5 tanh(x T), T a fixed seeded [H, H] matrix.
class Teacher {
 public:
  Teacher(uint64_t seed, int64_t hidden, const at::Device& device);
  at::Tensor operator()(const at::Tensor& x) const;

 private:
  at::Tensor t_;
};

}  // namespace loop
