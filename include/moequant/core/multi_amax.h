// Batched amax: many tensors observed in ONE kernel launch per device (docs/design.md, "Weight
// calibration ... one batched kernel launch per device, not one reduction per tensor").
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace moequant {

struct AmaxTask {
  at::Tensor tensor;         // any shape; per-channel treats it as [size(0), rest]
  bool per_channel = false;  // one value per row (axis 0) instead of one value
  size_t slot = 0;           // first result slot (per-channel: size(0) consecutive slots)
  std::string what;          // the tensor's name, for the NaN/Inf error
};

// MAX-combines every task's amax into `slots` (which must already hold values >= 0 or be
// pre-sized with zeros). One launch per device; NaN/Inf in any tensor throws an error listing
// the tensors that hold them.
void multi_amax(const std::vector<AmaxTask>& tasks, std::vector<float>& slots);

// Throws an error naming `what` when `t` holds NaN or Inf.
void check_finite(const at::Tensor& t, const std::string& what);

}  // namespace moequant
