#include "moequant/forward/checkpoint_tensor.h"

#include <ATen/ATen.h>

#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/core/fp8_block_source.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/model/source_quantization.h"

namespace moequant {

namespace {

at::Tensor mapped_view(const io::CheckpointFolder& ckpt, const std::string& name,
                       at::ScalarType type) {
  const io::TensorInfo& info = ckpt.info(name);
  return at::from_blob(const_cast<uint8_t*>(ckpt.data(name)), info.shape,
                       at::TensorOptions().dtype(type));
}

}  // namespace

bool is_fp8_block_weight(const io::CheckpointFolder& ckpt, const std::string& name) {
  return ckpt.has(name) && ckpt.info(name).dtype == DType::kF8E4M3 &&
         ckpt.has(fp8_block_scale_name(name));
}

at::Tensor checkpoint_tensor(const io::CheckpointFolder& ckpt, const std::string& name,
                             const std::vector<int64_t>& shape) {
  MQ_CHECK(ckpt.has(name), ckpt.dir(), ": tensor '", name, "' is missing");
  const io::TensorInfo& info = ckpt.info(name);
  MQ_CHECK(shape.empty() || info.shape == shape, ckpt.dir(), ": tensor '", name, "' has shape ",
           shape_string(info.shape), ", expected ", shape_string(shape));
  if (info.dtype != DType::kF8E4M3)
    return mapped_view(ckpt, name, weight_scalar_type(info.dtype, ckpt.dir() + ": " + name));
  const std::string scales = fp8_block_scale_name(name);
  MQ_CHECK(ckpt.has(scales), ckpt.dir(), ": tensor '", name, "' is F8_E4M3 but '", scales,
           "', its block scales, is missing");
  const io::TensorInfo& s = ckpt.info(scales);
  MQ_CHECK(s.dtype == DType::kF32, ckpt.dir(), ": '", scales, "' is ", dtype_name(s.dtype),
           ", expected F32 block scales");
  // A copy: safetensors data offsets need not be aligned for float access.
  const at::Tensor scale_bytes =
      at::from_blob(const_cast<uint8_t*>(ckpt.data(scales)), {static_cast<int64_t>(s.nbytes())},
                    at::TensorOptions().dtype(at::kByte));
  const at::Tensor scale_copy = scale_bytes.clone().view(at::kFloat).view(s.shape);
  return dequantize_fp8_blocks(mapped_view(ckpt, name, at::kByte), scale_copy,
                               ckpt.dir() + ": " + scales);
}

at::Tensor to_f32(const at::Tensor& t, const at::Device& device) {
  return t.to(device).to(at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

at::Tensor read_f32(const io::CheckpointFolder& ckpt, const std::string& name,
                    const at::Device& device, const std::vector<int64_t>& shape) {
  at::Tensor out = to_f32(checkpoint_tensor(ckpt, name, shape), device);
  ckpt.release(name);  // streamed: the copy is what the forward keeps
  return out;
}

}  // namespace moequant
