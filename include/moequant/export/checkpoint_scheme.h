// What an exported checkpoint declares, decided in ONE place from the requested format and from
// what was calibrated (FORMATS.md, fp8 and nvfp4): a static-activation algorithm (ModelOpt FP8 =
// W8A8, NVFP4 = W4A4) only when every input quantizer observed data, so that a checkpoint can
// never declare static activations without carrying every input_scale.
#pragma once

#include "moequant/common/format.h"

namespace moequant {

enum class CheckpointScheme {
  kUnquantized,         // --format none: the source's config, no quantization_config
  kModeloptFp8,         // ModelOpt "FP8": fp8 weights + static fp8 activations (input_scale)
  kFp8Dynamic,          // vLLM "fp8", activation_scheme dynamic: fp8 weights, no input_scale
  kModeloptNvfp4,       // ModelOpt "NVFP4" (W4A4): nvfp4 weights + input_scale
  kModeloptW4A16Nvfp4,  // ModelOpt "W4A16_NVFP4": nvfp4 weights, activations left in 16 bits
  kFp8Block,            // transformers "fp8" with weight_block_size [128, 128], dynamic
  kGptqInt4,            // GPTQ v1 int4, group 128 (W4A16)
};

// The scheme for `format`, given whether the activations entering every quantized linear were
// calibrated with data (input quantizers observed tokens).
CheckpointScheme choose_scheme(QuantFormat format, bool activations_calibrated);

// The weight format of a scheme.
QuantFormat scheme_format(CheckpointScheme s);
// True when the scheme carries an input_scale beside every quantized weight.
bool has_static_activations(CheckpointScheme s);
// True for ModelOpt's schemes (quant_method "modelopt", hf_quant_config.json written).
bool is_modelopt(CheckpointScheme s);
// ModelOpt's quant_algo ("FP8", "NVFP4", "W4A16_NVFP4"); "" for the others.
const char* modelopt_algo(CheckpointScheme s);
// A short description for tables and logs ("ModelOpt NVFP4 (W4A4, static input scales)").
const char* scheme_description(CheckpointScheme s);

}  // namespace moequant
