// Helpers the GPTQ column quantizers, the solver and the exact NVFP4 cast share: the stored
// tensors in layout order, and which matrix of a batch failed a check.
#include "gptq_quantizer.h"

#include <ATen/ATen.h>

#include "moequant/common/error.h"
#include "moequant/core/tensor_bridge.h"

namespace moequant {

std::vector<StoredTensor> stored_in_layout(QuantFormat format, int64_t rows, int64_t cols,
                                           const std::string& name,
                                           const std::map<std::string, at::Tensor>& data) {
  std::vector<StoredTensor> out;
  for (const StoredTensorSpec& s :
       format_descriptor(format).stored_tensors(rows, cols, DType::kF32, name)) {
    const auto it = data.find(s.suffix);
    MQ_CHECK(it != data.end(), name, ": the quantizer produced no '", s.suffix, "'");
    const at::Tensor& t = it->second;
    MQ_CHECK(t.sizes().vec() == s.shape && t.scalar_type() == storage_scalar_type(s.dtype) &&
                 t.is_contiguous(),
             name, ": the quantizer's '", s.suffix, "' has shape ", t.sizes(), " and dtype ",
             t.scalar_type(), " where the layout says ", c10::IntArrayRef(s.shape));
    out.push_back({s.suffix, s.dtype, s.shape, t});
  }
  return out;
}

int64_t first_failing(const at::Tensor& ok) {
  const at::Tensor failing = at::nonzero(at::logical_not(ok).flatten()).flatten();
  return failing.numel() == 0 ? -1 : failing[0].item<int64_t>();
}

}  // namespace moequant
