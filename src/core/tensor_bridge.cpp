#include "moequant/core/tensor_bridge.h"

#include "moequant/common/error.h"

#ifdef MOEQUANT_TORCH_HAS_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <optional>

namespace moequant {

DType checkpoint_dtype(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kBFloat16:
      return DType::kBF16;
    case at::kHalf:
      return DType::kF16;
    case at::kFloat:
      return DType::kF32;
    case at::kDouble:
      return DType::kF64;
    case at::kByte:
      return DType::kU8;
    case at::kChar:
      return DType::kI8;
    case at::kInt:
      return DType::kI32;
    case at::kLong:
      return DType::kI64;
    case at::kBool:
      return DType::kBool;
    default:
      MQ_THROW("no checkpoint dtype for ", t.scalar_type());
  }
}

at::ScalarType storage_scalar_type(DType t) {
  switch (t) {
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kF16:
      return at::kHalf;
    case DType::kF32:
      return at::kFloat;
    case DType::kF64:
      return at::kDouble;
    case DType::kF8E4M3:
    case DType::kU8:
      return at::kByte;
    case DType::kI8:
      return at::kChar;
    case DType::kI32:
      return at::kInt;
    case DType::kI64:
      return at::kLong;
    case DType::kBool:
      return at::kBool;
  }
  MQ_THROW("unknown dtype id ", static_cast<int>(t));
}

at::ScalarType weight_scalar_type(DType t, const std::string& what) {
  MQ_CHECK(t == DType::kBF16 || t == DType::kF16 || t == DType::kF32, what,
           ": expert weights must be BF16, F16 or F32, found ", dtype_name(t));
  return storage_scalar_type(t);
}

struct ThreadStream::Impl {
#ifdef MOEQUANT_TORCH_HAS_CUDA
  std::optional<c10::cuda::CUDAStreamGuard> guard;
#endif
};

ThreadStream::ThreadStream(const std::string& device) : impl_(std::make_unique<Impl>()) {
#ifdef MOEQUANT_TORCH_HAS_CUDA
  const at::Device d(device);
  if (d.is_cuda()) impl_->guard.emplace(c10::cuda::getStreamFromPool(false, d.index()));
#else
  (void)device;
#endif
}

ThreadStream::~ThreadStream() = default;

void ThreadStream::synchronize() {
#ifdef MOEQUANT_TORCH_HAS_CUDA
  if (impl_->guard) impl_->guard->current_stream().synchronize();
#endif
}

}  // namespace moequant
