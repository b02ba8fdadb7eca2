// quantize_weight / dequantize_weight: at::Tensor glue over the kernel C API.
#include "moequant/core/quantize.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/core/multi_amax.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

namespace {

at::Tensor empty_on(const at::Tensor& like, at::IntArrayRef shape, at::ScalarType type) {
  return at::empty(shape, like.options().dtype(type));
}

// Host floats copied into a float32 tensor on `like`'s device.
at::Tensor floats_on(const at::Tensor& like, const std::vector<float>& v, at::IntArrayRef shape) {
  at::Tensor host = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
  std::copy(v.begin(), v.end(), host.data_ptr<float>());
  return host.to(like.device());
}

mq_stream_t stream_of(const at::Tensor& t) {
  return static_cast<mq_stream_t>(kernel_stream(t));
}

void check_status(mq_status status, const char* op, const std::string& name) {
  MQ_CHECK(status == MQ_OK, name, ": ", op, " failed: ", mq_last_error());
}

std::vector<StoredTensor> quantize_fp8_scaled(const at::Tensor& w, mq_dtype dt, bool cuda,
                                              const std::vector<float>& scales,
                                              const std::string& name) {
  const int64_t rows = w.size(0), cols = w.size(1);
  const bool per_row = scales.size() != 1;
  std::vector<int64_t> scale_shape;
  if (per_row) scale_shape = {rows};
  at::Tensor scale_t = floats_on(w, scales, scale_shape);
  at::Tensor q = empty_on(w, {rows, cols}, at::kByte);
  const float* s = scale_t.data_ptr<float>();
  check_status(
      cuda ? mq_cuda_quantize_fp8(w.data_ptr(), dt, rows, cols, s, per_row, q.data_ptr<uint8_t>(),
                                  stream_of(w))
           : mq_cpu_quantize_fp8(w.data_ptr(), dt, rows, cols, s, per_row, q.data_ptr<uint8_t>()),
      "fp8 quantization", name);
  return {{"weight", DType::kF8E4M3, {rows, cols}, q},
          {"weight_scale", DType::kF32, scale_shape, scale_t}};
}

std::vector<StoredTensor> quantize_fp8(const at::Tensor& w, mq_dtype dt, bool cuda,
                                       const std::vector<float>& amax, const std::string& name) {
  const int64_t rows = w.size(0);
  const bool per_row = amax.size() != 1;
  MQ_CHECK(!per_row || static_cast<int64_t>(amax.size()) == rows, name, ": per-channel amax has ",
           amax.size(), " values for ", rows, " rows");
  std::vector<float> scales(amax.size());
  for (size_t i = 0; i < amax.size(); ++i) scales[i] = num::fp8_scale_from_amax(amax[i]);
  return quantize_fp8_scaled(w, dt, cuda, scales, name);
}

std::vector<StoredTensor> quantize_nvfp4_scaled(const at::Tensor& w, mq_dtype dt, bool cuda,
                                                float scale2, const std::string& name) {
  const int64_t rows = w.size(0), cols = w.size(1);
  MQ_CHECK(cols % num::kNvfp4Block == 0, name, ": nvfp4 needs in % 16 == 0, got shape [", rows,
           ", ", cols, "]");
  at::Tensor packed = empty_on(w, {rows, cols / 2}, at::kByte);
  at::Tensor block_scales = empty_on(w, {rows, cols / num::kNvfp4Block}, at::kByte);
  check_status(
      cuda
          ? mq_cuda_quantize_nvfp4(w.data_ptr(), dt, rows, cols, scale2, packed.data_ptr<uint8_t>(),
                                   block_scales.data_ptr<uint8_t>(), stream_of(w))
          : mq_cpu_quantize_nvfp4(w.data_ptr(), dt, rows, cols, scale2, packed.data_ptr<uint8_t>(),
                                  block_scales.data_ptr<uint8_t>()),
      "nvfp4 quantization", name);
  return {{"weight", DType::kU8, {rows, cols / 2}, packed},
          {"weight_scale", DType::kF8E4M3, {rows, cols / num::kNvfp4Block}, block_scales},
          {"weight_scale_2", DType::kF32, {}, floats_on(w, {scale2}, {})}};
}

std::vector<StoredTensor> quantize_nvfp4(const at::Tensor& w, mq_dtype dt, bool cuda,
                                         const std::vector<float>& amax, const std::string& name) {
  MQ_CHECK(amax.size() == 1, name, ": nvfp4 needs a per-tensor amax, got ", amax.size(), " values");
  return quantize_nvfp4_scaled(w, dt, cuda, num::nvfp4_scale2_from_amax(amax[0]), name);
}

std::vector<StoredTensor> quantize_fp8_block(const at::Tensor& w, mq_dtype dt, bool cuda,
                                             const std::string& name) {
  const int64_t rows = w.size(0), cols = w.size(1);
  const int64_t tr = ceil_div(rows, num::kFp8Tile), tc = ceil_div(cols, num::kFp8Tile);
  at::Tensor q = empty_on(w, {rows, cols}, at::kByte);
  at::Tensor tiles = empty_on(w, {tr, tc}, at::kFloat);
  check_status(cuda
                   ? mq_cuda_quantize_fp8_block(w.data_ptr(), dt, rows, cols, q.data_ptr<uint8_t>(),
                                                tiles.data_ptr<float>(), stream_of(w))
                   : mq_cpu_quantize_fp8_block(w.data_ptr(), dt, rows, cols, q.data_ptr<uint8_t>(),
                                               tiles.data_ptr<float>()),
               "fp8_block quantization", name);
  return {{"weight", DType::kF8E4M3, {rows, cols}, q},
          {"weight_scale_inv", DType::kF32, {tr, tc}, tiles}};
}

std::vector<StoredTensor> quantize_int4(const at::Tensor& w, mq_dtype dt, bool cuda,
                                        const std::string& name) {
  const int64_t rows = w.size(0), cols = w.size(1);
  MQ_CHECK(rows % 8 == 0 && cols % 8 == 0, name,
           ": int4 needs out % 8 == 0 and in % 8 == 0, got shape [", rows, ", ", cols, "]");
  const int64_t groups = ceil_div(cols, num::kInt4Group);
  at::Tensor qweight = empty_on(w, {cols / 8, rows}, at::kInt);
  at::Tensor scales = empty_on(w, {groups, rows}, at::kHalf);
  at::Tensor qzeros = empty_on(w, {groups, rows / 8}, at::kInt);
  at::Tensor g_idx = empty_on(w, {cols}, at::kInt);
  auto* scale_bits = static_cast<uint16_t*>(scales.data_ptr());
  check_status(cuda ? mq_cuda_quantize_int4(
                          w.data_ptr(), dt, rows, cols, qweight.data_ptr<int32_t>(), scale_bits,
                          qzeros.data_ptr<int32_t>(), g_idx.data_ptr<int32_t>(), stream_of(w))
                    : mq_cpu_quantize_int4(w.data_ptr(), dt, rows, cols,
                                           qweight.data_ptr<int32_t>(), scale_bits,
                                           qzeros.data_ptr<int32_t>(), g_idx.data_ptr<int32_t>()),
               "int4 quantization", name);
  return {{"qweight", DType::kI32, {cols / 8, rows}, qweight},
          {"qzeros", DType::kI32, {groups, rows / 8}, qzeros},
          {"scales", DType::kF16, {groups, rows}, scales},
          {"g_idx", DType::kI32, {cols}, g_idx}};
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
  if (format == QuantFormat::kNone) {
    return {{"weight", checkpoint_dtype(w), w.sizes().vec(), w.contiguous()}};
  }
  const at::Tensor wc = w.contiguous();
  const mq_dtype dt = kernel_dtype(wc, name);
  c10::DeviceGuard guard(wc.device());
  const bool cuda = use_cuda_kernels(wc);
  // fp8 and nvfp4 scales come from the calibrated amax, which already rejected NaN/Inf; the
  // block formats derive scales from the weight itself, so they check it here.
  if (format == QuantFormat::kFP8Block || format == QuantFormat::kINT4) check_finite(wc, name);
  switch (format) {
    case QuantFormat::kFP8:
      return quantize_fp8(wc, dt, cuda, amax, name);
    case QuantFormat::kNVFP4:
      return quantize_nvfp4(wc, dt, cuda, amax, name);
    case QuantFormat::kFP8Block:
      return quantize_fp8_block(wc, dt, cuda, name);
    case QuantFormat::kINT4:
      return quantize_int4(wc, dt, cuda, name);
    case QuantFormat::kNone:
      break;
  }
  MQ_THROW(name, ": unknown format");
}

at::Tensor fake_quantize(const at::Tensor& x, QuantFormat format, float scale,
                         const std::string& name) {
  MQ_CHECK(x.dim() == 2, name, ": expected a 2-D tensor, got shape ", x.sizes());
  MQ_CHECK(format == QuantFormat::kFP8 || format == QuantFormat::kNVFP4, name,
           ": activations are quantized in fp8 or nvfp4 only");
  MQ_CHECK(std::isfinite(scale) && scale > 0, name, ": input scale ", scale, " is not positive");
  if (x.numel() == 0) return x.to(at::kFloat);
  const at::Tensor xc = x.contiguous();
  c10::DeviceGuard guard(xc.device());
  const bool cuda = use_cuda_kernels(xc);
  const mq_dtype dt = kernel_dtype(xc, name);
  const std::vector<StoredTensor> stored = format == QuantFormat::kFP8
                                               ? quantize_fp8_scaled(xc, dt, cuda, {scale}, name)
                                               : quantize_nvfp4_scaled(xc, dt, cuda, scale, name);
  return dequantize_weight(stored, format, xc.size(0), xc.size(1), name);
}

at::Tensor dequantize_weight(const std::vector<StoredTensor>& stored, QuantFormat format,
                             int64_t rows, int64_t cols, const std::string& name) {
  if (format == QuantFormat::kNone) return find_stored(stored, "weight", name).data.to(at::kFloat);
  const bool on_cuda = stored.front().data.is_cuda();
  const at::Tensor& any = stored.front().data;
  c10::DeviceGuard guard(any.device());
  const bool cuda = on_cuda && use_cuda_kernels(any);
  at::Tensor out = empty_on(any, {rows, cols}, at::kFloat);
  float* o = out.data_ptr<float>();
  mq_status status = MQ_OK;
  switch (format) {
    case QuantFormat::kFP8: {
      const at::Tensor& q = find_stored(stored, "weight", name).data;
      const at::Tensor& s = find_stored(stored, "weight_scale", name).data;
      const int32_t per_row = s.numel() != 1;
      status = cuda ? mq_cuda_dequantize_fp8(q.data_ptr<uint8_t>(), rows, cols, s.data_ptr<float>(),
                                             per_row, o, stream_of(any))
                    : mq_cpu_dequantize_fp8(q.data_ptr<uint8_t>(), rows, cols, s.data_ptr<float>(),
                                            per_row, o);
      break;
    }
    case QuantFormat::kNVFP4: {
      const at::Tensor& q = find_stored(stored, "weight", name).data;
      const at::Tensor& bs = find_stored(stored, "weight_scale", name).data;
      const float scale2 =
          find_stored(stored, "weight_scale_2", name).data.to(at::kCPU).item<float>();
      status = cuda ? mq_cuda_dequantize_nvfp4(q.data_ptr<uint8_t>(), bs.data_ptr<uint8_t>(),
                                               scale2, rows, cols, o, stream_of(any))
                    : mq_cpu_dequantize_nvfp4(q.data_ptr<uint8_t>(), bs.data_ptr<uint8_t>(), scale2,
                                              rows, cols, o);
      break;
    }
    case QuantFormat::kFP8Block: {
      const at::Tensor& q = find_stored(stored, "weight", name).data;
      const at::Tensor& t = find_stored(stored, "weight_scale_inv", name).data;
      status = cuda ? mq_cuda_dequantize_fp8_block(q.data_ptr<uint8_t>(), t.data_ptr<float>(), rows,
                                                   cols, o, stream_of(any))
                    : mq_cpu_dequantize_fp8_block(q.data_ptr<uint8_t>(), t.data_ptr<float>(), rows,
                                                  cols, o);
      break;
    }
    case QuantFormat::kINT4: {
      const at::Tensor& q = find_stored(stored, "qweight", name).data;
      const at::Tensor& s = find_stored(stored, "scales", name).data;
      const auto* bits = static_cast<const uint16_t*>(s.data_ptr());
      status =
          cuda ? mq_cuda_dequantize_int4(q.data_ptr<int32_t>(), bits, rows, cols, o, stream_of(any))
               : mq_cpu_dequantize_int4(q.data_ptr<int32_t>(), bits, rows, cols, o);
      break;
    }
    case QuantFormat::kNone:
      break;
  }
  check_status(status, "dequantization", name);
  return out;
}

}  // namespace moequant
