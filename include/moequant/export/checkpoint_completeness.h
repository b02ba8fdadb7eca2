// Is a checkpoint folder complete for its config? Every tensor the config implies
// (model_tensors.h: embeddings, norms, attention, routers and their biases, shared experts,
// dense MLPs, lm_head unless tied) present with the implied shape and a dtype a reader takes; every
// FP8 block weight with its scales. Routed experts are checked where they are read (their count
// and shapes: HfMoeModel). A source that misses a tensor would otherwise export "fine" and load
// wrong; `verify` and `inspect` ask the same of an exported folder, whose linears may be stored in
// a quantized format.
#pragma once

#include <string>
#include <vector>

#include "moequant/io/checkpoint_folder.h"
#include "moequant/model/model_config.h"

namespace moequant {

// One line per problem, naming the tensor ("... 'lm_head.weight' is missing (config.json implies
// it: tie_word_embeddings is false)"); empty when complete. `of` says whether the folder is a
// source (plain or FP8 block weights) or an export (a linear may be stored quantized).
std::vector<std::string> checkpoint_problems(const io::CheckpointFolder& folder,
                                             const ModelConfig& config, ConfigOf of);

}  // namespace moequant
