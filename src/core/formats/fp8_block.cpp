// fp8_block: e4m3 weights in 128x128 tiles, a float32 weight_scale_inv = tile amax / 448 per
// tile (docs/formats.md#fp8_block): transformers' and vLLM's "fp8" with weight_block_size
// [128, 128], dynamic activations.
#include "formats.h"
#include "moequant/common/strings.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

namespace {

std::vector<StoredTensorSpec> layout(int64_t rows, int64_t cols, DType, const std::string&) {
  return {{"weight", DType::kF8E4M3, {rows, cols}, StoredRole::kWeight},
          {"weight_scale_inv",
           DType::kF32,
           {ceil_div(rows, num::kFp8Tile), ceil_div(cols, num::kFp8Tile)},
           StoredRole::kScale}};
}

mq_status quantize(const KernelWeight& k, const std::vector<float>&,
                   std::vector<StoredTensor>& out) {
  const int64_t rows = k.w.size(0), cols = k.w.size(1);
  float* tiles = out[1].data.data_ptr<float>();
  return k.cuda ? mq_cuda_quantize_fp8_block(k.w.data_ptr(), k.dtype, rows, cols, bytes_of(out[0]),
                                             tiles, k.stream)
                : mq_cpu_quantize_fp8_block(k.w.data_ptr(), k.dtype, rows, cols, bytes_of(out[0]),
                                            tiles);
}

mq_status dequantize(const std::vector<StoredTensor>& in, int64_t rows, int64_t cols, float* out,
                     bool cuda, mq_stream_t stream) {
  const float* tiles = in[1].data.data_ptr<float>();
  return cuda ? mq_cuda_dequantize_fp8_block(cbytes_of(in[0]), tiles, rows, cols, out, stream)
              : mq_cpu_dequantize_fp8_block(cbytes_of(in[0]), tiles, rows, cols, out);
}

const FormatKernels kKernels{MQ_FORMAT_FP8_BLOCK, nullptr, quantize, dequantize};

std::vector<int64_t> weight_shape(const std::vector<int64_t>& codes) {
  return codes;
}

}  // namespace

const FormatDescriptor& fp8_block_format() {
  static const FormatDescriptor d = [] {
    FormatDescriptor f;
    f.id = QuantFormat::kFP8Block;
    f.name = "fp8_block";
    f.bits = 8;
    f.block_size = {num::kFp8Tile, num::kFp8Tile};
    f.moe_intermediate_multiple = num::kFp8Tile;
    f.weights_only = {"fp8", "",
                      "fp8 128x128 blocks, dynamic activations (transformers quant_method fp8)"};
    f.layout = layout;
    f.weight_shape = weight_shape;
    f.amax_scale = "weight_scale_inv";
    f.amax_per_scale = num::kE4M3Max;
    f.kernels = &kKernels;
    return f;
  }();
  return d;
}

}  // namespace moequant
