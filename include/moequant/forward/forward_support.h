// Which models moequant's forward computes: calibration with data (and eval) run the model's own
// forward, so a layer type or feature it lacks must stop them before anything is read, with a
// message naming it; weight-only export needs no forward and works for every family.
#pragma once

#include <string>

#include "moequant/model/decoder_config.h"
#include "moequant/model/model_config.h"

namespace moequant {

// What the forward lacks for this model, named ("Gated DeltaNet (linear_attention) layers, e.g.
// layer 0"); "" when it computes every layer.
std::string forward_missing(const ModelConfig& config, const DecoderConfig& d);

// Throws, naming the folder, the model type and what is missing, when forward_missing() is not
// empty. `what` names the job that needs the forward ("calibration with data").
void check_forward_supports(const ModelConfig& config, const DecoderConfig& d,
                            const std::string& what);

}  // namespace moequant
