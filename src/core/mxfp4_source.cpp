#include "moequant/core/mxfp4_source.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include <cstring>
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
  check_mxfp4_scales(scales, name);
  // |value| of (scale, magnitude code 0..7), as the decoder's bf16 gives it.
  static const at::Tensor table = [] {
    std::vector<float> t(256 * 8);
    for (int s = 0; s < 256; ++s)
      for (int c = 0; c < 8; ++c) {
        const uint32_t bits = static_cast<uint32_t>(num::mxfp4_to_bf16(static_cast<uint8_t>(c),
                                                                       static_cast<uint8_t>(s)))
                              << 16;
        float f;
        std::memcpy(&f, &bits, sizeof(f));
        t[s * 8 + c] = f;
      }
    return at::tensor(t, at::kFloat);
  }();
  const at::Tensor low = blocks.bitwise_and(7),
                   high = blocks.bitwise_right_shift(4).bitwise_and_(7);
  const at::Tensor code = at::maximum(low, high).amax(2);  // [rows, nb]: the block's largest
  const at::Tensor index = scales.to(at::kLong).mul_(8).add_(code.to(at::kLong));
  return table.index({index}).max().item<float>();
}

}  // namespace moequant
