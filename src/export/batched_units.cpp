#include "batched_units.h"

#include <ATen/ATen.h>

#include <cstring>

#include "moequant/common/error.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"

namespace moequant::export_detail {

namespace {

constexpr int64_t kAlign = 256;  // every region of the staging buffers starts aligned

int64_t aligned(int64_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}

mq_format kernel_format(QuantFormat f) {
  switch (f) {
    case QuantFormat::kFP8:
      return MQ_FORMAT_FP8;
    case QuantFormat::kNVFP4:
      return MQ_FORMAT_NVFP4;
    case QuantFormat::kFP8Block:
      return MQ_FORMAT_FP8_BLOCK;
    case QuantFormat::kINT4:
      return MQ_FORMAT_INT4;
    case QuantFormat::kNone:
      break;
  }
  MQ_THROW("internal: no batched kernel for format none");
}

// Which kernel output a stored tensor is; -1 for the scalars computed on the host.
enum Slot { kHost = -1, kOut = 0, kScales = 1, kZeros = 2, kGroups = 3 };
Slot slot_of(QuantFormat f, const std::string& suffix) {
  if (suffix == "weight" || suffix == "qweight") return kOut;
  if (f == QuantFormat::kFP8 && suffix == "weight_scale") return kHost;
  if (suffix == "weight_scale_2") return kHost;
  if (suffix == "qzeros") return kZeros;
  if (suffix == "g_idx") return kGroups;
  return kScales;  // nvfp4 weight_scale, fp8_block weight_scale_inv, int4 scales
}

// One matrix of the batch and where its bytes go.
struct Matrix {
  at::Tensor w;        // [rows, cols], host
  std::string name;    // "...gate_proj.weight"
  float scale = 0.0f;  // fp8 weight_scale / nvfp4 weight_scale_2
  int64_t in_offset = 0;
  std::vector<OutputSpec> outputs;
  std::vector<int64_t> out_offset;  // per output, in the output buffer (-1: host scalar)
};

}  // namespace

std::vector<std::vector<at::Tensor>> quantize_units_batched(
    const ModelConfig& config, const ExportPlan& plan, const std::vector<size_t>& units,
    const std::vector<std::vector<at::Tensor>>& weights, const std::vector<UnitAmax>& amax,
    const std::string& device) {
  MQ_CHECK(!units.empty() && units.size() == weights.size() && units.size() == amax.size(),
           "internal: a batch of ", units.size(), " units");
  const QuantFormat format = plan.tensors[plan.units[units[0]].tensors[0]].format;
  const at::ScalarType dtype = weights[0][0].scalar_type();
  std::vector<Matrix> matrices;
  int64_t in_bytes = 0, out_bytes = 0;
  for (size_t u = 0; u < units.size(); ++u) {
    const PlannedUnit& unit = plan.units[units[u]];
    size_t next = 0;
    for (const at::Tensor& w : weights[u]) {
      const PlannedTensor& first = plan.tensors[unit.tensors[next]];
      MQ_CHECK(first.format == format && w.scalar_type() == dtype,
               "internal: a batch mixes formats or dtypes at '", first.name, "'");
      Matrix m;
      m.w = w.is_contiguous() ? w : w.contiguous();
      m.name = first.name.substr(0, first.name.rfind('.')) + ".weight";
      const float a = amax[u].weight.empty() ? 0.0f : amax[u].weight[0];
      m.scale = format == QuantFormat::kNVFP4 ? num::nvfp4_scale2_from_amax(a)
                                              : num::fp8_scale_from_amax(a);
      m.in_offset = in_bytes;
      in_bytes += aligned(static_cast<int64_t>(m.w.nbytes()));
      m.outputs =
          quantized_outputs(format, w.size(0), w.size(1), checkpoint_dtype(w), false, m.name);
      for (const OutputSpec& s : m.outputs) {
        if (slot_of(format, s.suffix) == kHost) {
          m.out_offset.push_back(-1);
          continue;
        }
        int64_t n = dtype_size(s.dtype);
        for (int64_t d : s.shape) n *= d;
        m.out_offset.push_back(out_bytes);
        out_bytes += aligned(n);
      }
      next += m.outputs.size() + (amax[u].input >= 0.0f ? 1 : 0);
      matrices.push_back(std::move(m));
    }
  }

  // Inputs: packed into one pinned buffer on the host, then one copy to the device.
  const at::Device dev(device);
  const auto pinned = at::TensorOptions().dtype(at::kByte).pinned_memory(true);
  at::Tensor host_in = at::empty({in_bytes}, pinned);
  for (const Matrix& m : matrices)
    std::memcpy(static_cast<uint8_t*>(host_in.data_ptr()) + m.in_offset, m.w.data_ptr(),
                m.w.nbytes());
  const at::Tensor dev_in = host_in.to(dev, /*non_blocking=*/true);
  at::Tensor dev_out = at::empty({std::max<int64_t>(out_bytes, 1)},
                                 at::TensorOptions().dtype(at::kByte).device(dev));
  auto* in_base = static_cast<uint8_t*>(dev_in.data_ptr());
  auto* out_base = static_cast<uint8_t*>(dev_out.data_ptr());
  std::vector<mq_quant_item> items;
  for (const Matrix& m : matrices) {
    mq_quant_item it{};
    it.w = in_base + m.in_offset;
    it.rows = m.w.size(0);
    it.cols = m.w.size(1);
    it.scale = m.scale;
    for (size_t k = 0; k < m.outputs.size(); ++k) {
      if (m.out_offset[k] < 0) continue;
      void* p = out_base + m.out_offset[k];
      switch (slot_of(format, m.outputs[k].suffix)) {
        case kOut:
          it.out = p;
          break;
        case kScales:
          it.scales = p;
          break;
        case kZeros:
          it.qzeros = static_cast<int32_t*>(p);
          break;
        case kGroups:
          it.g_idx = static_cast<int32_t*>(p);
          break;
        case kHost:
          break;
      }
    }
    items.push_back(it);
  }
  const mq_status status = mq_cuda_quantize_batched(
      kernel_format(format), kernel_dtype(matrices[0].w, matrices[0].name), items.data(),
      static_cast<int32_t>(items.size()), static_cast<mq_stream_t>(kernel_stream(dev_in)));
  MQ_CHECK(status == MQ_OK, "batched ", format_name(format), " quantization of ", items.size(),
           " matrices (", matrices[0].name, " ...) failed: ", mq_last_error());
  at::Tensor host_out = at::empty({std::max<int64_t>(out_bytes, 1)}, pinned);
  host_out.copy_(dev_out);  // on this thread's stream; waits for the kernel

  // Each unit's stored tensors, as quantize_weight returns them, then the common checks.
  std::vector<std::vector<at::Tensor>> out;
  size_t mi = 0;
  for (size_t u = 0; u < units.size(); ++u) {
    std::vector<std::vector<StoredTensor>> stored;
    for (size_t w = 0; w < weights[u].size(); ++w, ++mi) {
      const Matrix& m = matrices[mi];
      std::vector<StoredTensor> tensors;
      for (size_t k = 0; k < m.outputs.size(); ++k) {
        const OutputSpec& s = m.outputs[k];
        at::Tensor bytes;
        if (m.out_offset[k] < 0) {
          bytes = at::full({}, m.scale, at::kFloat);
        } else {
          int64_t n = dtype_size(s.dtype);
          for (int64_t d : s.shape) n *= d;
          // Typed as quantize_weight types them (F8_E4M3 and U8 as bytes, F32, F16, I32).
          bytes = host_out.narrow(0, m.out_offset[k], n)
                      .view(storage_scalar_type(s.dtype))
                      .view(s.shape);
        }
        tensors.push_back({s.suffix, s.dtype, s.shape, bytes});
      }
      stored.push_back(std::move(tensors));
    }
    out.push_back(finish_unit(config, plan, plan.units[units[u]], stored, amax[u].input));
  }
  return out;
}

}  // namespace moequant::export_detail
