#include "kernel_bridge.h"

#include "moequant/common/error.h"

#ifdef MOEQUANT_TORCH_HAS_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace moequant {

mq_dtype kernel_dtype(const at::Tensor& t, const std::string& what) {
  switch (t.scalar_type()) {
    case at::kBFloat16:
      return MQ_DTYPE_BF16;
    case at::kHalf:
      return MQ_DTYPE_F16;
    case at::kFloat:
      return MQ_DTYPE_F32;
    default:
      MQ_THROW(what, ": unsupported weight dtype ", t.scalar_type(),
               " (expected bfloat16, float16 or float32)");
  }
}

bool use_cuda_kernels(const at::Tensor& t) {
  if (!t.is_cuda()) return false;
  MQ_CHECK(mq_cuda_available(), "tensor on ", t.device(),
           " but this build of moequant has no CUDA kernels (rebuild with nvcc available)");
  return true;
}

mq_stream_t kernel_stream(const at::Tensor& t) {
#ifdef MOEQUANT_TORCH_HAS_CUDA
  if (t.is_cuda())
    return static_cast<mq_stream_t>(c10::cuda::getCurrentCUDAStream(t.device().index()).stream());
#endif
  (void)t;
  return nullptr;
}

}  // namespace moequant
