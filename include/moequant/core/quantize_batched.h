// Many weights of one format quantized by ONE kernel launch on a GPU (docs/design.md, "Rank-aware
// export"): packed into one pinned buffer, copied to the device once, quantized by
// mq_cuda_quantize_batched (bit-exact with the per-matrix kernels and the CPU path), copied back
// once, all on the calling thread's own stream so that several threads overlap copies and kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "moequant/core/format.h"
#include "moequant/core/quantize.h"

namespace moequant {

// One weight of a batch: [rows, cols] on the host, with its quantizer's amax (ignored by formats
// whose scales come from the weight) and its checkpoint name for messages.
struct BatchedWeight {
  at::Tensor w;
  std::vector<float> amax;
  std::string name;
};

// For each weight, its stored tensors as quantize_weight returns them (layout order), on the host.
// Every weight must have the same dtype. Errors name the first weight of the batch.
std::vector<std::vector<StoredTensor>> quantize_weights_batched(
    const std::vector<BatchedWeight>& weights, QuantFormat format, const std::string& device);

}  // namespace moequant
