// How a source checkpoint's own weights are stored, from its config.json "quantization_config"
// (docs/formats.md, "Quantized sources"): plain (bf16/fp16/fp32), or DeepSeek's FP8 blocks
// (every decoder linear F8_E4M3 with an F32 weight_scale_inv per 128x128 block) or GPT-OSS's
// MXFP4 experts (<name>_blocks and <name>_scales beside bf16 everything else), read by
// dequantizing to bf16. Any other quantization is refused by name: quantizing an already
// quantized checkpoint again would compound the error without saying so.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace moequant {

enum class SourceFormat {
  kPlain,     // no quantization_config: weights in a float dtype
  kFp8Block,  // quant_method "fp8" with weight_block_size [128, 128] (DeepSeek-V3/R1, Kimi-K2)
  kMxfp4,     // quant_method "mxfp4": the routed experts in MXFP4 blocks (GPT-OSS)
};

struct SourceQuantization {
  SourceFormat format = SourceFormat::kPlain;
  int64_t block_rows = 0, block_cols = 0;  // kFp8Block: 128, 128
  // kMxfp4: the modules the release keeps in bf16 (its modules_to_not_convert), as given.
  std::vector<std::string> not_converted;
  // "bf16 (no quantization)", "fp8 128x128 blocks (weight_scale_inv)": for summaries.
  std::string describe() const;
};

// Reads config.json's "quantization_config" (absent or null: plain). Errors name `file`: an
// unknown or unsupported quant_method, fp8 without block scales or with other blocks than
// [128, 128], an mxfp4 modules_to_not_convert that is not a list of names.
SourceQuantization source_quantization(const nlohmann::json& config, const std::string& file);

// "<weight>_scale_inv": the tensor beside an FP8 block weight that holds its block scales
// ("x.weight" -> "x.weight_scale_inv").
std::string fp8_block_scale_name(const std::string& weight_name);

}  // namespace moequant
