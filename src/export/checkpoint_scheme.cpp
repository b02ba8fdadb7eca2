#include "moequant/export/checkpoint_scheme.h"

namespace moequant {

CheckpointScheme choose_scheme(QuantFormat format, bool activations_calibrated) {
  switch (format) {
    case QuantFormat::kNone:
      return CheckpointScheme::kUnquantized;
    case QuantFormat::kFP8:
      return activations_calibrated ? CheckpointScheme::kModeloptFp8
                                    : CheckpointScheme::kFp8Dynamic;
    case QuantFormat::kNVFP4:
      return activations_calibrated ? CheckpointScheme::kModeloptNvfp4
                                    : CheckpointScheme::kModeloptW4A16Nvfp4;
    case QuantFormat::kFP8Block:
      return CheckpointScheme::kFp8Block;
    case QuantFormat::kINT4:
      return CheckpointScheme::kGptqInt4;
  }
  return CheckpointScheme::kUnquantized;
}

QuantFormat scheme_format(CheckpointScheme s) {
  switch (s) {
    case CheckpointScheme::kUnquantized:
      return QuantFormat::kNone;
    case CheckpointScheme::kModeloptFp8:
    case CheckpointScheme::kFp8Dynamic:
      return QuantFormat::kFP8;
    case CheckpointScheme::kModeloptNvfp4:
    case CheckpointScheme::kModeloptW4A16Nvfp4:
      return QuantFormat::kNVFP4;
    case CheckpointScheme::kFp8Block:
      return QuantFormat::kFP8Block;
    case CheckpointScheme::kGptqInt4:
      return QuantFormat::kINT4;
  }
  return QuantFormat::kNone;
}

bool has_static_activations(CheckpointScheme s) {
  return s == CheckpointScheme::kModeloptFp8 || s == CheckpointScheme::kModeloptNvfp4;
}

bool is_modelopt(CheckpointScheme s) {
  return s == CheckpointScheme::kModeloptFp8 || s == CheckpointScheme::kModeloptNvfp4 ||
         s == CheckpointScheme::kModeloptW4A16Nvfp4;
}

const char* modelopt_algo(CheckpointScheme s) {
  switch (s) {
    case CheckpointScheme::kModeloptFp8:
      return "FP8";
    case CheckpointScheme::kModeloptNvfp4:
      return "NVFP4";
    case CheckpointScheme::kModeloptW4A16Nvfp4:
      return "W4A16_NVFP4";
    default:
      return "";
  }
}

const char* scheme_description(CheckpointScheme s) {
  switch (s) {
    case CheckpointScheme::kUnquantized:
      return "unquantized (source dtype)";
    case CheckpointScheme::kModeloptFp8:
      return "ModelOpt FP8 (W8A8, static input scales)";
    case CheckpointScheme::kFp8Dynamic:
      return "fp8 per-tensor weights, dynamic activations (vLLM quant_method fp8)";
    case CheckpointScheme::kModeloptNvfp4:
      return "ModelOpt NVFP4 (W4A4, static input scales)";
    case CheckpointScheme::kModeloptW4A16Nvfp4:
      return "ModelOpt W4A16_NVFP4 (nvfp4 weights, 16-bit activations)";
    case CheckpointScheme::kFp8Block:
      return "fp8 128x128 blocks, dynamic activations (transformers quant_method fp8)";
    case CheckpointScheme::kGptqInt4:
      return "GPTQ int4 (W4A16, group 128)";
  }
  return "";
}

}  // namespace moequant
