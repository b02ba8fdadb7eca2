// fp8: per-tensor (or per-row) e4m3 weights, weight_scale = amax / 448 (docs/formats.md#fp8).
// Weights only it is vLLM's dynamic "fp8"; with calibrated activations ModelOpt's "FP8" (W8A8).
#include "formats.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

namespace {

std::vector<StoredTensorSpec> layout(int64_t rows, int64_t cols, DType, const std::string&) {
  return {{"weight", DType::kF8E4M3, {rows, cols}, StoredRole::kWeight},
          {"weight_scale", DType::kF32, {}, StoredRole::kScale, /*from_amax=*/true}};
}

float scale_from_amax(float amax) {
  return num::fp8_scale_from_amax(amax);
}

mq_status quantize(const KernelWeight& k, const std::vector<float>& scales,
                   std::vector<StoredTensor>& out) {
  const int64_t rows = k.w.size(0), cols = k.w.size(1);
  const float* s = out[1].data.data_ptr<float>();
  const int32_t per_row = scales.size() != 1;
  return k.cuda ? mq_cuda_quantize_fp8(k.w.data_ptr(), k.dtype, rows, cols, s, per_row,
                                       bytes_of(out[0]), k.stream)
                : mq_cpu_quantize_fp8(k.w.data_ptr(), k.dtype, rows, cols, s, per_row,
                                      bytes_of(out[0]));
}

mq_status dequantize(const std::vector<StoredTensor>& in, int64_t rows, int64_t cols, float* out,
                     bool cuda, mq_stream_t stream) {
  const float* s = in[1].data.data_ptr<float>();
  const int32_t per_row = in[1].data.numel() != 1;
  return cuda ? mq_cuda_dequantize_fp8(cbytes_of(in[0]), rows, cols, s, per_row, out, stream)
              : mq_cpu_dequantize_fp8(cbytes_of(in[0]), rows, cols, s, per_row, out);
}

const FormatKernels kKernels{MQ_FORMAT_FP8, scale_from_amax, quantize, dequantize};

std::vector<int64_t> weight_shape(const std::vector<int64_t>& codes) {
  return codes;
}

}  // namespace

const FormatDescriptor& fp8_format() {
  static const FormatDescriptor d = [] {
    FormatDescriptor f;
    f.id = QuantFormat::kFP8;
    f.name = "fp8";
    f.scale_from_amax = true;
    f.input_scale_divisor = num::kE4M3Max;
    f.bits = 8;
    f.gate_up_shared_scalars = {"weight_scale", "input_scale"};
    f.weights_only = {"fp8", "",
                      "fp8 per-tensor weights, dynamic activations (vLLM quant_method fp8)"};
    f.with_activations = {"modelopt", "FP8", "ModelOpt FP8 (W8A8, static input scales)"};
    f.layout = layout;
    f.weight_shape = weight_shape;
    f.amax_scale = "weight_scale";
    f.amax_per_scale = num::kE4M3Max;
    f.kernels = &kKernels;
    return f;
  }();
  return d;
}

}  // namespace moequant
