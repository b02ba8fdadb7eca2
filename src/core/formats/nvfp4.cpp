// nvfp4: e2m1 codes in blocks of 16 along `in`, an e4m3 scale per block and a float32
// weight_scale_2 = amax / (6 * 448) (docs/formats.md#nvfp4). Weights only it is ModelOpt's
// "W4A16_NVFP4"; with calibrated activations "NVFP4" (W4A4).
#include "formats.h"
#include "moequant/common/error.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

namespace {

std::vector<StoredTensorSpec> layout(int64_t rows, int64_t cols, DType, const std::string& name) {
  MQ_CHECK(cols % num::kNvfp4Block == 0, name, ": nvfp4 needs in % 16 == 0, got shape [", rows,
           ", ", cols, "]");
  return {{"weight", DType::kU8, {rows, cols / 2}, StoredRole::kWeight},
          {"weight_scale", DType::kF8E4M3, {rows, cols / num::kNvfp4Block}, StoredRole::kScale},
          {"weight_scale_2", DType::kF32, {}, StoredRole::kScale, /*from_amax=*/true}};
}

float scale_from_amax(float amax) {
  return num::nvfp4_scale2_from_amax(amax);
}

mq_status quantize(const KernelWeight& k, const std::vector<float>& scales,
                   std::vector<StoredTensor>& out) {
  const int64_t rows = k.w.size(0), cols = k.w.size(1);
  return k.cuda ? mq_cuda_quantize_nvfp4(k.w.data_ptr(), k.dtype, rows, cols, scales.at(0),
                                         bytes_of(out[0]), bytes_of(out[1]), k.stream)
                : mq_cpu_quantize_nvfp4(k.w.data_ptr(), k.dtype, rows, cols, scales.at(0),
                                        bytes_of(out[0]), bytes_of(out[1]));
}

mq_status dequantize(const std::vector<StoredTensor>& in, int64_t rows, int64_t cols, float* out,
                     bool cuda, mq_stream_t stream) {
  const float scale2 = in[2].data.to(at::kCPU).item<float>();
  return cuda
             ? mq_cuda_dequantize_nvfp4(cbytes_of(in[0]), cbytes_of(in[1]), scale2, rows, cols, out,
                                        stream)
             : mq_cpu_dequantize_nvfp4(cbytes_of(in[0]), cbytes_of(in[1]), scale2, rows, cols, out);
}

const FormatKernels kKernels{MQ_FORMAT_NVFP4, scale_from_amax, quantize, dequantize};

std::vector<int64_t> weight_shape(const std::vector<int64_t>& codes) {
  return {codes.at(0), codes.at(1) * 2};  // two e2m1 codes per byte
}

}  // namespace

const FormatDescriptor& nvfp4_format() {
  static const FormatDescriptor d = [] {
    FormatDescriptor f;
    f.id = QuantFormat::kNVFP4;
    f.name = "nvfp4";
    f.scale_from_amax = true;
    f.input_scale_divisor = num::kNvfp4ScaleProduct;
    f.bits = 4;
    f.group_size = num::kNvfp4Block;
    f.gate_up_shared_scalars = {"weight_scale_2", "input_scale"};
    f.weights_only = {"modelopt", "W4A16_NVFP4",
                      "ModelOpt W4A16_NVFP4 (nvfp4 weights, 16-bit activations)"};
    f.with_activations = {"modelopt", "NVFP4", "ModelOpt NVFP4 (W4A4, static input scales)"};
    f.layout = layout;
    f.weight_shape = weight_shape;
    f.amax_scale = "weight_scale_2";
    f.amax_per_scale = num::kNvfp4ScaleProduct;
    f.kernels = &kKernels;
    return f;
  }();
  return d;
}

}  // namespace moequant
