// int4: GPTQ v1, symmetric, groups of 128 along `in` (docs/formats.md#int4): qweight I32
// [in/8, out], qzeros I32 [G, out/8] (every nibble 7), scales F16 [G, out], g_idx I32 [in].
#include "formats.h"
#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

namespace {

std::vector<StoredTensorSpec> layout(int64_t rows, int64_t cols, DType, const std::string& name) {
  MQ_CHECK(rows % 8 == 0 && cols % 8 == 0, name,
           ": int4 needs out % 8 == 0 and in % 8 == 0, got shape [", rows, ", ", cols, "]");
  const int64_t groups = ceil_div(cols, num::kInt4Group);
  return {{"qweight", DType::kI32, {cols / 8, rows}, StoredRole::kWeight},
          {"qzeros", DType::kI32, {groups, rows / 8}, StoredRole::kZeros},
          {"scales", DType::kF16, {groups, rows}, StoredRole::kScale},
          {"g_idx", DType::kI32, {cols}, StoredRole::kGroupIndex}};
}

mq_status quantize(const KernelWeight& k, const std::vector<float>&,
                   std::vector<StoredTensor>& out) {
  const int64_t rows = k.w.size(0), cols = k.w.size(1);
  int32_t* qweight = out[0].data.data_ptr<int32_t>();
  int32_t* qzeros = out[1].data.data_ptr<int32_t>();
  auto* scales = static_cast<uint16_t*>(out[2].data.data_ptr());
  int32_t* g_idx = out[3].data.data_ptr<int32_t>();
  return k.cuda ? mq_cuda_quantize_int4(k.w.data_ptr(), k.dtype, rows, cols, qweight, scales,
                                        qzeros, g_idx, k.stream)
                : mq_cpu_quantize_int4(k.w.data_ptr(), k.dtype, rows, cols, qweight, scales, qzeros,
                                       g_idx);
}

mq_status dequantize(const std::vector<StoredTensor>& in, int64_t rows, int64_t cols, float* out,
                     bool cuda, mq_stream_t stream) {
  const int32_t* qweight = in[0].data.data_ptr<int32_t>();
  const auto* scales = static_cast<const uint16_t*>(in[2].data.data_ptr());
  return cuda ? mq_cuda_dequantize_int4(qweight, scales, rows, cols, out, stream)
              : mq_cpu_dequantize_int4(qweight, scales, rows, cols, out);
}

const FormatKernels kKernels{MQ_FORMAT_INT4, nullptr, quantize, dequantize};

std::vector<int64_t> weight_shape(const std::vector<int64_t>& codes) {
  return {codes.at(1), codes.at(0) * 8};  // [in/8, out], eight codes per int32
}

}  // namespace

const FormatDescriptor& int4_format() {
  static const FormatDescriptor d = [] {
    FormatDescriptor f;
    f.id = QuantFormat::kINT4;
    f.name = "int4";
    f.bits = 4;
    f.group_size = num::kInt4Group;
    f.weights_only = {"gptq", "", "GPTQ int4 (W4A16, group 128)"};
    f.layout = layout;
    f.weight_shape = weight_shape;
    f.amax_scale = "scales";
    f.amax_per_scale = 7.0f;
    f.kernels = &kKernels;
    return f;
  }();
  return d;
}

}  // namespace moequant
