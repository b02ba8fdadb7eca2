// What the calibration and eval passes do at the inputs of the dense linears (attention, shared
// experts, dense MLPs) and at the attention's keys and values: observe them (input amax, KV-cache
// amax) or replace them (the quantization an engine applies to them). Each hook gets the tensor and
// returns the one the forward goes on with; an absent hook leaves it as it is.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

#include "moequant/model/model_tensors.h"

namespace moequant {

struct ForwardHooks {
  // The input [..., in] of the linear of `use` (once per fusion group: the input of q/k/v is
  // given for kQ, of gate/up for the gate).
  std::function<at::Tensor(TensorUse use, const at::Tensor& input)> linear_input;
  // Keys (after q/k norm and RoPE) or values [B, kv_heads, T, head_dim], as the KV cache holds
  // them.
  std::function<at::Tensor(bool keys, const at::Tensor& x)> kv;

  at::Tensor input(TensorUse use, const at::Tensor& x) const {
    return linear_input ? linear_input(use, x) : x;
  }
  at::Tensor cache(bool keys, const at::Tensor& x) const { return kv ? kv(keys, x) : x; }
};

}  // namespace moequant
