// quantize_weight / dequantize_weight: the format's layout allocated on the weight's device and
// filled by the format's kernel entry (src/core/formats/).
#include "moequant/core/quantize.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include <cmath>

#include "formats/formats.h"
#include "kernel_bridge.h"
#include "moequant/common/error.h"
#include "moequant/core/multi_amax.h"
#include "moequant/core/tensor_bridge.h"

namespace moequant {

namespace {

// The format's stored tensors for `w`, allocated on its device; the from_amax scalars hold
// `scales` (one value, or one per row).
std::vector<StoredTensor> allocate(const FormatDescriptor& f, const at::Tensor& w,
                                   const std::vector<float>& scales, const std::string& name) {
  std::vector<StoredTensor> out;
  for (StoredTensorSpec& s : f.stored_tensors(w.size(0), w.size(1), checkpoint_dtype(w), name)) {
    at::Tensor data;
    if (s.from_amax) {
      if (scales.size() != 1) s.shape = {static_cast<int64_t>(scales.size())};
      data = at::empty(s.shape, at::TensorOptions().dtype(at::kFloat));
      std::copy(scales.begin(), scales.end(), data.data_ptr<float>());
      data = data.to(w.device());
    } else {
      data = at::empty(s.shape, w.options().dtype(storage_scalar_type(s.dtype)));
    }
    out.push_back({s.suffix, s.dtype, s.shape, data});
  }
  return out;
}

// `w` quantized with the given per-tensor (or per-row) scales.
std::vector<StoredTensor> quantize_scaled(const at::Tensor& w, const FormatDescriptor& f,
                                          const std::vector<float>& scales,
                                          const std::string& name) {
  c10::DeviceGuard guard(w.device());
  const KernelWeight k{w, kernel_dtype(w, name), use_cuda_kernels(w), kernel_stream(w)};
  std::vector<StoredTensor> out = allocate(f, w, scales, name);
  MQ_CHECK_KERNEL(f.kernels->quantize(k, scales, out), name, ": ", f.name, " quantization");
  return out;
}

}  // namespace

const StoredTensor& find_stored(const std::vector<StoredTensor>& stored, const std::string& suffix,
                                const std::string& name) {
  for (const auto& s : stored)
    if (s.suffix == suffix) return s;
  MQ_THROW(name, ": quantized tensor '", suffix, "' is missing");
}

std::vector<StoredTensor> quantize_weight(const at::Tensor& w, QuantFormat format,
                                          const std::vector<float>& amax, const std::string& name) {
  MQ_CHECK(w.defined(), name, ": weight is undefined");
  MQ_CHECK(w.dim() == 2, name, ": expected a 2-D weight [out, in], got shape ", w.sizes());
  const FormatDescriptor& f = format_descriptor(format);
  if (!f.quantizes()) return {{"weight", checkpoint_dtype(w), w.sizes().vec(), w.contiguous()}};
  const at::Tensor wc = w.contiguous();
  std::vector<float> scales;
  if (f.scale_from_amax) {
    // The quantizer's amax, which calibration already checked for NaN/Inf.
    MQ_CHECK(amax.size() == 1 ||
                 (format == QuantFormat::kFP8 && static_cast<int64_t>(amax.size()) == wc.size(0)),
             name, ": ", f.name, " needs a per-tensor amax",
             format == QuantFormat::kFP8 ? " (or one per row)" : "", ", got ", amax.size(),
             " values for ", wc.size(0), " rows");
    for (float a : amax) scales.push_back(f.kernels->scale_from_amax(a));
  } else {
    check_finite(wc, name);  // the scales come from the weight itself
  }
  return quantize_scaled(wc, f, scales, name);
}

at::Tensor fake_quantize(const at::Tensor& x, QuantFormat format, float scale,
                         const std::string& name) {
  MQ_CHECK(x.dim() == 2, name, ": expected a 2-D tensor, got shape ", x.sizes());
  const FormatDescriptor& f = format_descriptor(format);
  MQ_CHECK(f.has_static_activations(), name, ": activations are quantized in ",
           "fp8 or nvfp4 only, not ", f.name);
  MQ_CHECK(std::isfinite(scale) && scale > 0, name, ": input scale ", scale, " is not positive");
  if (x.numel() == 0) return x.to(at::kFloat);
  const at::Tensor xc = x.contiguous();
  return dequantize_weight(quantize_scaled(xc, f, {scale}, name), format, xc.size(0), xc.size(1),
                           name);
}

at::Tensor dequantize_weight(const std::vector<StoredTensor>& stored, QuantFormat format,
                             int64_t rows, int64_t cols, const std::string& name) {
  const FormatDescriptor& f = format_descriptor(format);
  if (!f.quantizes()) return find_stored(stored, "weight", name).data.to(at::kFloat);
  // The stored tensors in layout order, whatever order the caller holds them in.
  std::vector<StoredTensor> ordered;
  for (const StoredTensorSpec& s : f.stored_tensors(rows, cols, DType::kBF16, name))
    ordered.push_back(find_stored(stored, s.suffix, name));
  const at::Tensor& any = ordered.front().data;
  c10::DeviceGuard guard(any.device());
  const bool cuda = use_cuda_kernels(any);
  at::Tensor out = at::empty({rows, cols}, any.options().dtype(at::kFloat));
  MQ_CHECK_KERNEL(
      f.kernels->dequantize(ordered, rows, cols, out.data_ptr<float>(), cuda, kernel_stream(any)),
      name, ": ", f.name, " dequantization");
  return out;
}

}  // namespace moequant
