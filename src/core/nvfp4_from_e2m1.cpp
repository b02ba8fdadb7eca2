#include "moequant/core/nvfp4_from_e2m1.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>

#include "gptq_quantizer.h"
#include "kernel_bridge.h"
#include "moequant/common/error.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

float nvfp4_power_of_two_scale2(float amax) {
  if (!(amax > 0.0f) || !std::isfinite(amax)) return 1.0f;
  int g = std::ilogb(amax) - 2;
  while (std::ldexp(6.0f, g) < amax) ++g;
  return std::ldexp(1.0f, g - 8);
}

Nvfp4FromE2m1 quantize_nvfp4_keeping_e2m1(const at::Tensor& w, float amax,
                                          const std::string& name) {
  MQ_CHECK(w.dim() == 2 && w.scalar_type() == at::kBFloat16, name,
           ": the exact NVFP4 cast takes a bf16 [out, in] weight, got ", w.scalar_type(), " ",
           w.sizes());
  const int64_t rows = w.size(0), cols = w.size(1);
  MQ_CHECK(cols % num::kNvfp4Block == 0, name, ": nvfp4 needs in % 16 == 0, got shape [", rows,
           ", ", cols, "]");
  const at::Tensor host = w.to(at::kCPU).contiguous();
  const float scale2 = nvfp4_power_of_two_scale2(amax);
  const auto bytes = at::TensorOptions().dtype(at::kByte);
  at::Tensor packed = at::empty({rows, cols / 2}, bytes),
             scales = at::empty({rows, cols / num::kNvfp4Block}, bytes);
  Nvfp4FromE2m1 out;
  out.blocks = rows * cols / num::kNvfp4Block;
  MQ_CHECK_KERNEL(mq_cpu_quantize_nvfp4_exact(static_cast<const uint16_t*>(host.data_ptr()), rows,
                                              cols, scale2, packed.data_ptr<uint8_t>(),
                                              scales.data_ptr<uint8_t>(), &out.requantized),
                  name, ": nvfp4 (exact cast)");
  out.stored = stored_in_layout(QuantFormat::kNVFP4, rows, cols, name,
                                {{"weight", packed},
                                 {"weight_scale", scales},
                                 {"weight_scale_2", at::full({}, scale2, at::kFloat)}});
  return out;
}

}  // namespace moequant
