// Error messages that name the API function and the CUDA call that failed.
#include <cuda_runtime.h>

#include <string>

#include "cuda_utils.cuh"

namespace moequant {
namespace kernels {
namespace cuda {

mq_status cuda_error(const char* fn, const char* call, cudaError_t err) {
  std::string name(call);
  const size_t paren = name.find('(');
  if (paren != std::string::npos) name.resize(paren);
  return set_error(MQ_ERR_CUDA, std::string(fn) + ": " + name + " failed: " +
                                    cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

}  // namespace cuda
}  // namespace kernels
}  // namespace moequant
