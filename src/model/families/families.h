// The registry of model families (each one file beside this) and the config.json readers they
// share.
#pragma once

#include <string>
#include <vector>

#include "moequant/model/model_family.h"

namespace moequant {

const ModelFamily& qwen3_moe_family();
const ModelFamily& qwen2_moe_family();
const ModelFamily& mixtral_family();

// "model.layers.{L}.".
std::string layer_prefix(int layer);
// gate_proj / up_proj / down_proj.
std::string swiglu_proj_name(ExpertProj p);
// The first of `keys` present: a positive integer, or an error naming `file` and the key.
int64_t config_int(const nlohmann::json& c, const std::vector<const char*>& keys,
                   const std::string& file);
bool config_bool(const nlohmann::json& c, const char* key, bool fallback);
// Qwen's rule: layer l is MoE unless listed in mlp_only_layers, and when (l + 1) is a multiple
// of decoder_sparse_step (default 1).
std::vector<int> sparse_step_layers(const nlohmann::json& c, int num_layers);

}  // namespace moequant
