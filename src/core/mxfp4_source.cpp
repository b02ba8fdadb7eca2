#include "moequant/core/mxfp4_source.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include "kernel_bridge.h"
#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

at::Tensor dequantize_mxfp4(const at::Tensor& blocks, const at::Tensor& scales,
                            const std::string& name) {
  constexpr int64_t kBytes = num::kMxfp4Block / 2;
  MQ_CHECK(blocks.dim() == 3 && blocks.scalar_type() == at::kByte && blocks.size(2) == kBytes, name,
           ": MXFP4 blocks must be U8 [rows, cols/32, 16], got ",
           shape_string(blocks.sizes().vec()));
  const int64_t rows = blocks.size(0), cols = blocks.size(1) * num::kMxfp4Block;
  const std::vector<int64_t> want = {rows, blocks.size(1)};
  MQ_CHECK(scales.scalar_type() == at::kByte && scales.sizes().vec() == want, name,
           ": MXFP4 scales must be U8 ", shape_string(want), " for blocks ",
           shape_string(blocks.sizes().vec()), ", got ", shape_string(scales.sizes().vec()));
  const at::Tensor host_scales = scales.to(at::kCPU).contiguous();
  const uint8_t* s = host_scales.data_ptr<uint8_t>();
  for (int64_t i = 0; i < host_scales.numel(); ++i)
    MQ_CHECK(s[i] != 255, name, ": scale ", i, " is 255, e8m0's NaN");
  const at::Tensor q = blocks.contiguous();
  c10::DeviceGuard guard(q.device());
  const at::Tensor dev_scales = host_scales.to(q.device());
  at::Tensor out = at::empty({rows, cols}, q.options().dtype(at::kBFloat16));
  auto* bits = static_cast<uint16_t*>(out.data_ptr());
  if (rows == 0 || cols == 0) return out;
  MQ_CHECK_KERNEL(
      use_cuda_kernels(q)
          ? mq_cuda_dequantize_mxfp4_bf16(q.data_ptr<uint8_t>(), dev_scales.data_ptr<uint8_t>(),
                                          rows, cols, bits, kernel_stream(q))
          : mq_cpu_dequantize_mxfp4_bf16(q.data_ptr<uint8_t>(), dev_scales.data_ptr<uint8_t>(),
                                         rows, cols, bits),
      name, ": MXFP4 dequantization");
  return out;
}

}  // namespace moequant
