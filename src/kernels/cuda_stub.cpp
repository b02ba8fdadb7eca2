// The mq_cuda_* entry points of a build without nvcc: each one reports MQ_ERR_NO_CUDA, so code
// that links the kernel layer builds everywhere and finds out at run time (mq_cuda_available()
// is 0) that only the mq_cpu_* paths exist.
#include <string>

#include "moequant/kernels/kernels.h"
#include "status.h"

namespace {

mq_status no_cuda(const char* fn) {
  return moequant::kernels::set_error(
      MQ_ERR_NO_CUDA, std::string(fn) +
                          ": this build of moequant has no CUDA kernels (nvcc was not found or "
                          "MOEQUANT_WITH_CUDA was OFF at configure time); use the mq_cpu_* path");
}

}  // namespace

extern "C" {

mq_status mq_cuda_multi_amax(const mq_amax_item*, int32_t, float*, int32_t*, mq_stream_t) {
  return no_cuda("mq_cuda_multi_amax");
}

mq_status mq_cuda_quantize_fp8(const void*, mq_dtype, int64_t, int64_t, const float*, int32_t,
                               uint8_t*, mq_stream_t) {
  return no_cuda("mq_cuda_quantize_fp8");
}

mq_status mq_cuda_quantize_nvfp4(const void*, mq_dtype, int64_t, int64_t, float, uint8_t*, uint8_t*,
                                 mq_stream_t) {
  return no_cuda("mq_cuda_quantize_nvfp4");
}

mq_status mq_cuda_quantize_fp8_block(const void*, mq_dtype, int64_t, int64_t, uint8_t*, float*,
                                     mq_stream_t) {
  return no_cuda("mq_cuda_quantize_fp8_block");
}

mq_status mq_cuda_quantize_int4(const void*, mq_dtype, int64_t, int64_t, int32_t*, uint16_t*,
                                int32_t*, int32_t*, mq_stream_t) {
  return no_cuda("mq_cuda_quantize_int4");
}

mq_status mq_cuda_quantize_batched(mq_format, mq_dtype, const mq_quant_item*, int32_t,
                                   mq_stream_t) {
  return no_cuda("mq_cuda_quantize_batched");
}

mq_status mq_cuda_dequantize_fp8(const uint8_t*, int64_t, int64_t, const float*, int32_t, float*,
                                 mq_stream_t) {
  return no_cuda("mq_cuda_dequantize_fp8");
}

mq_status mq_cuda_dequantize_nvfp4(const uint8_t*, const uint8_t*, float, int64_t, int64_t, float*,
                                   mq_stream_t) {
  return no_cuda("mq_cuda_dequantize_nvfp4");
}

mq_status mq_cuda_dequantize_fp8_block(const uint8_t*, const float*, int64_t, int64_t, float*,
                                       mq_stream_t) {
  return no_cuda("mq_cuda_dequantize_fp8_block");
}
mq_status mq_cuda_dequantize_mxfp4_bf16(const uint8_t*, const uint8_t*, int64_t, int64_t, uint16_t*,
                                        mq_stream_t) {
  return no_cuda("mq_cuda_dequantize_mxfp4_bf16");
}
mq_status mq_cuda_dequantize_fp8_block_bf16(const uint8_t*, const float*, int64_t, int64_t,
                                            uint16_t*, mq_stream_t) {
  return no_cuda("mq_cuda_dequantize_fp8_block_bf16");
}

mq_status mq_cuda_dequantize_int4(const int32_t*, const uint16_t*, int64_t, int64_t, float*,
                                  mq_stream_t) {
  return no_cuda("mq_cuda_dequantize_int4");
}

int32_t mq_cuda_available(void) {
  return 0;
}

}  // extern "C"
