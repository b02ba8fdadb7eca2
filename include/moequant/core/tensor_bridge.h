// The narrow bridge between at::Tensor and the kernel C API: dtype mapping, CPU/CUDA dispatch.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "moequant/common/dtype.h"
#include "moequant/kernels/kernels.h"

namespace moequant {

// bf16 / fp16 / fp32 weights map to the kernel dtypes; anything else is an error naming `what`.
mq_dtype kernel_dtype(const at::Tensor& t, const std::string& what);
// The checkpoint dtype of a tensor's scalar type (kByte is reported as U8).
DType checkpoint_dtype(const at::Tensor& t);
// at::ScalarType holding the bytes of a checkpoint dtype (F8_E4M3 and U8 as kByte, F16 as kHalf).
at::ScalarType storage_scalar_type(DType t);
// The scalar type of a checkpoint dtype usable as a weight (BF16, F16, F32); anything else is an
// error naming `what`.
at::ScalarType weight_scalar_type(DType t, const std::string& what);
// The caller's current CUDA stream on `t`'s device (a cudaStream_t), where the kernels must run
// to stay ordered with the caller's own work; nullptr for CPU tensors.
void* kernel_stream(const at::Tensor& t);
// While alive, CUDA work this thread issues on `device` runs on a stream of its own (from
// LibTorch's pool), so that several producer threads overlap copies and kernels; nothing for
// CPU devices or builds without CUDA LibTorch.
class ThreadStream {
 public:
  explicit ThreadStream(const std::string& device);
  ~ThreadStream();
  ThreadStream(const ThreadStream&) = delete;
  ThreadStream& operator=(const ThreadStream&) = delete;
  // Waits for the work queued on this thread's stream (before handing its tensors to another
  // thread). Nothing on the CPU.
  void synchronize();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True when `t` lives on a CUDA device and this build has the CUDA kernels.
bool use_cuda_kernels(const at::Tensor& t);

}  // namespace moequant
