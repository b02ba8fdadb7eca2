#include "moequant/core/quantize_batched.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include <cstring>

#include "formats/formats.h"
#include "kernel_bridge.h"
#include "moequant/common/error.h"
#include "moequant/core/tensor_bridge.h"

namespace moequant {

namespace {

constexpr int64_t kAlign = 256;  // every region of the staging buffers starts aligned

int64_t aligned(int64_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}

int64_t bytes_of(const StoredTensorSpec& s) {
  int64_t n = dtype_size(s.dtype);
  for (int64_t d : s.shape) n *= d;
  return n;
}

// One weight of the batch and where its bytes go in the staging buffers.
struct Matrix {
  at::Tensor w;        // [rows, cols], host, contiguous
  float scale = 0.0f;  // the from_amax scalar (fp8 weight_scale, nvfp4 weight_scale_2)
  int64_t in_offset = 0;
  std::vector<StoredTensorSpec> outputs;
  std::vector<int64_t> out_offset;  // per output, in the output buffer (-1: a host scalar)
};

// The item's pointer for a stored tensor of `role`.
void bind(mq_quant_item& it, StoredRole role, void* p) {
  switch (role) {
    case StoredRole::kWeight:
      it.out = p;
      break;
    case StoredRole::kScale:
      it.scales = p;
      break;
    case StoredRole::kZeros:
      it.qzeros = static_cast<int32_t*>(p);
      break;
    case StoredRole::kGroupIndex:
      it.g_idx = static_cast<int32_t*>(p);
      break;
  }
}

}  // namespace

std::vector<std::vector<StoredTensor>> quantize_weights_batched(
    const std::vector<BatchedWeight>& weights, QuantFormat format, const std::string& device) {
  MQ_CHECK(!weights.empty(), "internal: an empty batch");
  const FormatDescriptor& f = format_descriptor(format);
  MQ_CHECK(f.quantizes(), "internal: a batch of unquantized weights");
  const std::string& first = weights[0].name;
  const at::ScalarType dtype = weights[0].w.scalar_type();
  std::vector<Matrix> matrices;
  int64_t in_bytes = 0, out_bytes = 0;
  for (const BatchedWeight& bw : weights) {
    MQ_CHECK(bw.w.dim() == 2 && bw.w.scalar_type() == dtype, "internal: '", bw.name,
             "' is not a 2-D weight of the batch's dtype");
    Matrix m;
    m.w = bw.w.contiguous();
    if (f.scale_from_amax) {
      MQ_CHECK(bw.amax.size() == 1, bw.name, ": ", f.name, " needs a per-tensor amax, got ",
               bw.amax.size(), " values");
      m.scale = f.kernels->scale_from_amax(bw.amax[0]);
    }
    m.in_offset = in_bytes;
    in_bytes += aligned(static_cast<int64_t>(m.w.nbytes()));
    m.outputs = f.stored_tensors(m.w.size(0), m.w.size(1), checkpoint_dtype(m.w), bw.name);
    for (const StoredTensorSpec& s : m.outputs) {
      m.out_offset.push_back(s.from_amax ? -1 : out_bytes);
      if (!s.from_amax) out_bytes += aligned(bytes_of(s));
    }
    matrices.push_back(std::move(m));
  }

  // Inputs: packed into one pinned buffer on the host, then one copy to the device.
  const at::Device dev(device);
  c10::DeviceGuard guard(dev);
  const auto pinned = at::TensorOptions().dtype(at::kByte).pinned_memory(dev.is_cuda());
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
    for (size_t k = 0; k < m.outputs.size(); ++k)
      if (m.out_offset[k] >= 0) bind(it, m.outputs[k].role, out_base + m.out_offset[k]);
    items.push_back(it);
  }
  const bool cuda = use_cuda_kernels(dev_in);
  const mq_dtype kdtype = kernel_dtype(matrices[0].w, first);
  MQ_CHECK_KERNEL(
      cuda ? mq_cuda_quantize_batched(f.kernels->batched, kdtype, items.data(),
                                      static_cast<int32_t>(items.size()), kernel_stream(dev_in))
           : mq_cpu_quantize_batched(f.kernels->batched, kdtype, items.data(),
                                     static_cast<int32_t>(items.size())),
      "batched ", f.name, " quantization of ", items.size(), " matrices (", first, " ...)");
  at::Tensor host_out = at::empty({std::max<int64_t>(out_bytes, 1)}, pinned);
  host_out.copy_(dev_out);  // on this thread's stream; waits for the kernel

  // Each weight's stored tensors, typed as quantize_weight types them.
  std::vector<std::vector<StoredTensor>> out;
  for (const Matrix& m : matrices) {
    std::vector<StoredTensor> tensors;
    for (size_t k = 0; k < m.outputs.size(); ++k) {
      const StoredTensorSpec& s = m.outputs[k];
      const at::Tensor bytes = m.out_offset[k] < 0
                                   ? at::full({}, m.scale, at::kFloat)
                                   : host_out.narrow(0, m.out_offset[k], bytes_of(s))
                                         .view(storage_scalar_type(s.dtype))
                                         .view(s.shape);
      tensors.push_back({s.suffix, s.dtype, s.shape, bytes});
    }
    out.push_back(std::move(tensors));
  }
  return out;
}

}  // namespace moequant
