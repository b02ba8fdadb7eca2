#include "exported_experts.h"

#include <ATen/ATen.h>

#include <cstring>

#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/core/quantize.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/export/export_plan.h"
#include "moequant/export/scale_checks.h"

namespace moequant {

namespace {

// The checks the exporter and verify make on every scale (scale_checks.h): a zero, negative or
// non-finite one is an error naming the folder and the tensor, not NaN in the metrics.
void checked_scales(const io::CheckpointFolder& folder, const std::string& name, DType dtype,
                    const at::Tensor& host) {
  try {
    check_scale_tensor(name, dtype, host);
  } catch (const Error& e) {
    MQ_THROW(folder.dir(), ": ", e.what());
  }
}

}  // namespace

QuantFormat stored_format(const io::CheckpointFolder& folder, const std::string& module) {
  return stored_format([&](const std::string& s) { return folder.has(module + "." + s); });
}

at::Tensor dequantized_projection(const io::CheckpointFolder& folder, const std::string& module,
                                  int64_t rows, int64_t cols, const at::Device& device) {
  const QuantFormat f = stored_format(folder, module);
  const DType source =
      folder.has(module + ".weight") ? folder.info(module + ".weight").dtype : DType::kBF16;
  std::vector<StoredTensor> stored;
  for (const StoredTensorSpec& s :
       format_descriptor(f).stored_tensors(rows, cols, source, module + ".weight")) {
    const std::string name = module + "." + s.suffix;
    MQ_CHECK(folder.has(name), folder.dir(), ": tensor '", name, "' is missing");
    const io::TensorInfo& info = folder.info(name);
    MQ_CHECK(info.dtype == s.dtype && info.shape == s.shape, folder.dir(), ": tensor '", name,
             "' is ", dtype_name(info.dtype), " ", shape_string(info.shape), ", expected ",
             dtype_name(s.dtype), " ", shape_string(s.shape));
    at::Tensor t = at::empty(s.shape, at::TensorOptions().dtype(storage_scalar_type(s.dtype)));
    std::memcpy(t.data_ptr(), folder.data(name), info.nbytes());  // mapped bytes may be unaligned
    checked_scales(folder, name, s.dtype, t);
    stored.push_back({s.suffix, s.dtype, s.shape, t.to(device)});
  }
  return dequantize_weight(stored, f, rows, cols, module + ".weight").to(device);
}

SwiGluWeights dequantized_expert(const io::CheckpointFolder& folder, const ModelConfig& config,
                                 int layer, int expert, const at::Device& device) {
  const int64_t I = config.intermediate, H = config.hidden;
  auto proj = [&](ExpertProj p, int64_t rows, int64_t cols) {
    return dequantized_projection(folder, config.expert_module_name(layer, expert, p), rows, cols,
                                  device);
  };
  SwiGluWeights w;
  w.gate = proj(ExpertProj::kGate, I, H);
  w.up = proj(ExpertProj::kUp, I, H);
  w.down = proj(ExpertProj::kDown, H, I);
  return w;
}

std::optional<float> input_scale_of(const io::CheckpointFolder& folder, const std::string& module) {
  const std::string name = module + ".input_scale";
  if (!folder.has(name)) return std::nullopt;
  return scalar_scale(folder, name);
}

float scalar_scale(const io::CheckpointFolder& folder, const std::string& name) {
  const io::TensorInfo& info = folder.info(name);
  MQ_CHECK(info.dtype == DType::kF32 && info.numel() == 1, folder.dir(), ": '", name,
           "' must be a float32 scalar");
  float v;
  std::memcpy(&v, folder.data(name), 4);
  checked_scales(folder, name, DType::kF32, at::tensor(v));
  return v;
}

}  // namespace moequant
