#include "moequant/core/fp8_block_source.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include <cmath>

#include "kernel_bridge.h"
#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

at::Tensor dequantize_fp8_blocks(const at::Tensor& codes, const at::Tensor& scale_inv,
                                 const std::string& name) {
  MQ_CHECK(codes.dim() == 2 && codes.scalar_type() == at::kByte, name,
           ": an fp8 block weight must be 2-D F8_E4M3, got shape ", codes.sizes());
  const int64_t rows = codes.size(0), cols = codes.size(1);
  const std::vector<int64_t> tiles = {ceil_div(rows, num::kFp8Tile), ceil_div(cols, num::kFp8Tile)};
  MQ_CHECK(scale_inv.scalar_type() == at::kFloat && scale_inv.sizes().vec() == tiles, name,
           ": block scales must be F32 ", shape_string(tiles), " for a ",
           shape_string(std::vector<int64_t>{rows, cols}), " weight, got ", scale_inv.scalar_type(),
           " ", shape_string(scale_inv.sizes().vec()));
  const at::Tensor host_scales = scale_inv.to(at::kCPU).contiguous();
  const float* s = host_scales.data_ptr<float>();
  for (int64_t i = 0; i < host_scales.numel(); ++i)
    MQ_CHECK(std::isfinite(s[i]) && s[i] > 0.0f, name, ": block scale ", i, " is ", s[i],
             " (every block scale must be finite and positive)");
  const at::Tensor q = codes.contiguous();
  c10::DeviceGuard guard(q.device());
  const at::Tensor scales = host_scales.to(q.device());
  at::Tensor out = at::empty({rows, cols}, q.options().dtype(at::kBFloat16));
  auto* bits = static_cast<uint16_t*>(out.data_ptr());
  MQ_CHECK_KERNEL(
      use_cuda_kernels(q)
          ? mq_cuda_dequantize_fp8_block_bf16(q.data_ptr<uint8_t>(), scales.data_ptr<float>(), rows,
                                              cols, bits, kernel_stream(q))
          : mq_cpu_dequantize_fp8_block_bf16(q.data_ptr<uint8_t>(), scales.data_ptr<float>(), rows,
                                             cols, bits),
      name, ": fp8 block dequantization");
  return out;
}

}  // namespace moequant
