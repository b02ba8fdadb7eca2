// The narrow bridge between at::Tensor and the kernel C API: dtype mapping, CPU/CUDA dispatch.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "moequant/core/dtype.h"
#include "moequant/kernels/kernels.h"

namespace moequant {

// bf16 / fp16 / fp32 weights map to the kernel dtypes; anything else is an error naming `what`.
mq_dtype kernel_dtype(const at::Tensor& t, const std::string& what);
// The checkpoint dtype of a tensor's scalar type (kByte is reported as U8).
DType checkpoint_dtype(const at::Tensor& t);
// at::ScalarType holding the bytes of a checkpoint dtype (F8_E4M3 and U8 as kByte, F16 as kHalf).
at::ScalarType storage_scalar_type(DType t);
// True when `t` lives on a CUDA device and this build has the CUDA kernels.
bool use_cuda_kernels(const at::Tensor& t);

}  // namespace moequant
