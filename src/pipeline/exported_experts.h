// Reading an exported checkpoint's routed experts back: each projection's stored tensors
// (whatever format they are in, recognized by the tensors beside the weight) dequantized to
// float32, and the input scale an engine applies to its activations. What `moequant eval` runs.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <optional>

#include "moequant/core/format.h"
#include "moequant/forward/decoder_weights.h"
#include "moequant/io/checkpoint_folder.h"

namespace moequant {

// The format a module is stored in: none, or the one its scale tensors show.
QuantFormat stored_format(const io::CheckpointFolder& folder, const std::string& module);

// One expert projection [out, in] dequantized to float32 on `device` (format none: the stored
// weight). Errors name the tensor that is missing or mis-shaped.
at::Tensor dequantized_projection(const io::CheckpointFolder& folder, const std::string& module,
                                  int64_t rows, int64_t cols, const at::Device& device);

// gate, up and down of one routed expert, dequantized.
SwiGluWeights dequantized_expert(const io::CheckpointFolder& folder, const ModelConfig& config,
                                 int layer, int expert, const at::Device& device);

// The float32 input_scale beside a module's weight, when there is one.
std::optional<float> input_scale_of(const io::CheckpointFolder& folder, const std::string& module);

// A float32 scalar scale tensor (k_scale, v_scale), checked as every scale is.
float scalar_scale(const io::CheckpointFolder& folder, const std::string& name);

}  // namespace moequant
