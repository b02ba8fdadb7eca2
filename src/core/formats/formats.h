// The formats of src/core/formats/ (one file each) and their kernel entries: how core turns an
// at::Tensor weight into the tensors the format stores and back, through the kernel C API.
// Private to core: the layers above reach the kernels only through core/quantize.h and
// core/quantize_batched.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "moequant/core/format.h"
#include "moequant/core/quantize.h"
#include "moequant/kernels/kernels.h"

namespace moequant {

// A weight as the kernels see it: [rows, cols], contiguous, with its kernel dtype, on the CPU or
// on a CUDA device (then `stream` is the caller's stream there).
struct KernelWeight {
  const at::Tensor& w;
  mq_dtype dtype;
  bool cuda;
  mq_stream_t stream;
};

struct FormatKernels {
  mq_format batched = MQ_FORMAT_FP8;  // the format argument of mq_*_quantize_batched
  // The per-tensor scale a quantizer's amax gives (scale_from_amax formats).
  float (*scale_from_amax)(float amax) = nullptr;
  // Fills `out` (allocated from the format's layout on the weight's device, from_amax scalars
  // already holding `scales`) from the weight. `scales`: one value, or fp8 one per row; the
  // block formats ignore them.
  mq_status (*quantize)(const KernelWeight& w, const std::vector<float>& scales,
                        std::vector<StoredTensor>& out) = nullptr;
  // `stored` (in layout order, on one device) back to float32 [rows, cols] at `out`.
  mq_status (*dequantize)(const std::vector<StoredTensor>& stored, int64_t rows, int64_t cols,
                          float* out, bool cuda, mq_stream_t stream) = nullptr;
};

const FormatDescriptor& none_format();
const FormatDescriptor& fp8_format();
const FormatDescriptor& nvfp4_format();
const FormatDescriptor& fp8_block_format();
const FormatDescriptor& int4_format();

// Typed pointers into stored tensors (F8_E4M3 and U8 are held as kByte, F16 as kHalf).
inline uint8_t* bytes_of(const StoredTensor& t) {
  return static_cast<uint8_t*>(t.data.data_ptr());
}
inline const uint8_t* cbytes_of(const StoredTensor& t) {
  return static_cast<const uint8_t*>(t.data.data_ptr());
}

}  // namespace moequant
