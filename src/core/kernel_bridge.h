// at::Tensor to the kernel C API (include/moequant/kernels/kernels.h): dtypes, the device a
// tensor's kernels run on, and the caller's stream there. Private to core: the layers above
// quantize through core/quantize.h and core/quantize_batched.h, never the C API.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "moequant/common/error.h"
#include "moequant/kernels/kernels.h"

// MQ_CHECK_KERNEL(call, context...): runs an mq_* kernel API call; on failure throws
// "<context> failed: <the kernel's message>".
#define MQ_CHECK_KERNEL(call, ...)                                                  \
  do {                                                                              \
    const mq_status mq_status_ = (call);                                            \
    if (mq_status_ != MQ_OK) MQ_THROW(__VA_ARGS__, " failed: ", ::mq_last_error()); \
  } while (0)

namespace moequant {

// bf16 / fp16 / fp32 weights map to the kernel dtypes; anything else is an error naming `what`.
mq_dtype kernel_dtype(const at::Tensor& t, const std::string& what);
// True when `t` lives on a CUDA device and this build has the CUDA kernels (an error when it
// lives there and the build has none).
bool use_cuda_kernels(const at::Tensor& t);
// The caller's current CUDA stream on `t`'s device, where the kernels must run to stay ordered
// with the caller's own work; nullptr for CPU tensors.
mq_stream_t kernel_stream(const at::Tensor& t);

}  // namespace moequant
