#include "moequant/core/mxfp4_source.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include <cmath>
#include <vector>

#include "kernel_bridge.h"
#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

void check_mxfp4_scales(const at::Tensor& scales, const std::string& name) {
  const at::Tensor nan = scales.eq(255).flatten();
  if (!nan.any().item<bool>()) return;
  MQ_THROW(name, ": scale ", nan.nonzero()[0][0].item<int64_t>(), " is 255, e8m0's NaN");
}

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
  check_mxfp4_scales(host_scales, name);
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

float mxfp4_amax(const at::Tensor& blocks, const at::Tensor& scales, const std::string& name) {
  constexpr int64_t kBytes = num::kMxfp4Block / 2;
  MQ_CHECK(blocks.dim() == 3 && blocks.scalar_type() == at::kByte && blocks.size(2) == kBytes &&
               blocks.device().is_cpu(),
           name, ": MXFP4 blocks must be U8 [rows, cols/32, 16] on the CPU, got ",
           shape_string(blocks.sizes().vec()));
  const std::vector<int64_t> want = {blocks.size(0), blocks.size(1)};
  MQ_CHECK(
      scales.scalar_type() == at::kByte && scales.sizes().vec() == want && scales.device().is_cpu(),
      name, ": MXFP4 scales must be U8 ", shape_string(want), " for blocks ",
      shape_string(blocks.sizes().vec()), ", got ", shape_string(scales.sizes().vec()));
  if (blocks.numel() == 0) return 0.0f;
  // The kernel walks rows `pitch` blocks apart; other strides are made so by a copy.
  at::Tensor b = blocks, s = scales;
  if (b.stride(2) != 1 || b.stride(1) != 16 || s.stride(1) != 1 || b.stride(0) != 16 * s.stride(0))
    b = blocks.contiguous(), s = scales.contiguous();
  const int64_t pitch = b.size(0) > 1 ? s.stride(0) : b.size(1);  // one row: any stride
  float amax = 0.0f;
  MQ_CHECK_KERNEL(mq_cpu_mxfp4_amax(b.data_ptr<uint8_t>(), s.data_ptr<uint8_t>(), b.size(0),
                                    b.size(1), pitch, &amax),
                  name, ": MXFP4 amax");
  if (std::isnan(amax)) check_mxfp4_scales(scales, name);  // names the first NaN scale
  return amax;
}

}  // namespace moequant
