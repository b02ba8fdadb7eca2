// What an exported checkpoint declares: the weight format and whether activations carry static
// input scales, decided in ONE place from the format and from what was calibrated
// (docs/formats.md, fp8 and nvfp4): static activations (ModelOpt FP8 = W8A8, NVFP4 = W4A4) only
// when every input quantizer observed data, so that a checkpoint can never declare them without
// carrying every input_scale. The names it is declared by are the format's (core/format.h).
#pragma once

#include "moequant/core/format.h"

namespace moequant {

struct CheckpointScheme {
  QuantFormat format = QuantFormat::kNone;
  bool static_activations = false;  // an input_scale beside every quantized weight
  bool kv_cache_fp8 = false;        // k_scale / v_scale per attention layer (ModelOpt schemes)

  const FormatDescriptor& descriptor() const { return format_descriptor(format); }
  // quant_method, ModelOpt quant_algo and description of this flavour of the format.
  const SchemeNames& names() const {
    return static_activations ? descriptor().with_activations : descriptor().weights_only;
  }
  // ModelOpt's schemes: config.json's flat form plus hf_quant_config.json.
  bool is_modelopt() const { return names().quant_method == "modelopt"; }
  bool operator==(const CheckpointScheme& o) const {
    return format == o.format && static_activations == o.static_activations &&
           kv_cache_fp8 == o.kv_cache_fp8;
  }
  bool operator!=(const CheckpointScheme& o) const { return !(*this == o); }
};

// The scheme for `format`, given whether the activations entering every quantized linear were
// calibrated with data: static activations where the format has them and they were calibrated.
inline CheckpointScheme choose_scheme(QuantFormat format, bool activations_calibrated) {
  return {format, activations_calibrated && format_descriptor(format).has_static_activations()};
}

}  // namespace moequant
