// The bridge between at::Tensor and checkpoint dtypes, and the CUDA streams producer threads
// run on. (The mapping to the kernel C API is private to core: src/core/kernel_bridge.h.)
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "moequant/common/dtype.h"

namespace moequant {

// The checkpoint dtype of a tensor's scalar type (kByte is reported as U8).
DType checkpoint_dtype(const at::Tensor& t);
// at::ScalarType holding the bytes of a checkpoint dtype (F8_E4M3 and U8 as kByte, F16 as kHalf).
at::ScalarType storage_scalar_type(DType t);
// The scalar type of a checkpoint dtype usable as a weight (BF16, F16, F32); anything else is an
// error naming `what`.
at::ScalarType weight_scalar_type(DType t, const std::string& what);
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

}  // namespace moequant
