// A Hugging Face MoE model's config.json, and the names its tensors have on disk. What differs by
// family comes from its ModelFamily (model_family.h); what every family shares is here:
// model.embed_tokens, model.layers.{L}.{self_attn,input_layernorm,...}, model.norm, lm_head.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "moequant/model/model_family.h"
#include "moequant/model/source_quantization.h"

namespace moequant {

// Where a checkpoint tensor belongs in the model: before the decoder layers (embeddings), in
// layer `layer`, or after them (final norm, lm_head).
struct TensorPlace {
  enum Kind { kBeforeLayers, kLayer, kAfterLayers } kind = kAfterLayers;
  int layer = -1;
};

struct ModelConfig {
  std::string dir;         // the model folder
  std::string model_type;  // "qwen3_moe", "mixtral", ...
  const ModelFamily* family = nullptr;
  int num_layers = 0;
  int extra_layers = 0;  // layers past num_layers (MTP): carried over unquantized, never run
  int num_experts = 0;
  int64_t hidden = 0;
  int64_t intermediate = 0;     // of one routed expert
  std::vector<int> moe_layers;  // global indices of the layers with routed experts, ascending
  SourceQuantization source;    // how the checkpoint stores its own weights
  nlohmann::json raw;           // config.json as read (what an export writes back)
  nlohmann::json text;          // the text model's keys: raw, or its "text_config" in a wrapper

  bool is_moe_layer(int layer) const;
  // A layer index the checkpoint may hold: a decoder layer or an extra (MTP) one.
  bool holds_layer(int layer) const { return layer >= 0 && layer < num_layers + extra_layers; }

  // ---- names ---------------------------------------------------------------------------------
  // "model." ("model.language_model." in a multimodal wrapper): the text model's tensors.
  std::string text_root() const;
  // "<root>layers.{L}." (the prefix of every tensor of a decoder layer).
  std::string layer_prefix(int layer) const;
  // The MoE block ("model.layers.{L}.mlp" / ".block_sparse_moe"), its router ("<block>.gate")
  // and its routed experts ("<block>.experts").
  std::string moe_block(int layer) const;
  std::string router_module(int layer) const;
  std::string experts_prefix(int layer) const;
  // Name of the projection inside an expert: gate_proj/up_proj/down_proj or w1/w3/w2.
  std::string proj_name(ExpertProj p) const;
  // The MLP of a layer without routed experts ("model.layers.{L}.mlp").
  std::string dense_mlp(int layer) const;
  // "<experts_prefix>.{E}.<proj>": the module name of one expert projection; "... .weight".
  std::string expert_module_name(int layer, int expert, ExpertProj p) const;
  std::string expert_weight_name(int layer, int expert, ExpertProj p) const;
  // The fused 3-D names that some checkpoints store instead: "<experts_prefix>.gate_up_proj"
  // and "<experts_prefix>.down_proj" (laid out as family->fused_layout() says; an MXFP4 source
  // stores "<name>_blocks" and "<name>_scales" instead).
  std::string fused_gate_up_name(int layer) const;
  std::string fused_down_name(int layer) const;
  // The routed experts' module path inside a decoder block ("mlp.experts"), for GPTQ's
  // modules_in_block_to_quantize.
  std::string experts_in_block() const;

  // ---- reading names -------------------------------------------------------------------------
  TensorPlace place_of(const std::string& tensor_name) const;
  // True (with its global layer and expert) for a tensor of a routed expert of a decoder layer:
  // "<experts_prefix(L)>.{E}.…", or a fused "<experts_prefix(L)>.gate_up_proj" / ".down_proj"
  // or their MXFP4 "_blocks" / "_scales" (expert -1). Fused expert biases (GPT-OSS's
  // "gate_up_proj_bias") are not: they are carried over. The experts of extra (MTP) layers are not:
  // they are carried over.
  bool is_routed_expert_tensor(const std::string& tensor_name, int* layer = nullptr,
                               int* expert = nullptr) const;
  // True for a token embedding ("model.embed_tokens.weight", a wrapper's or an MTP layer's own):
  // a 2-D weight but no linear.
  static bool is_embedding(const std::string& tensor_name);
  // The linear modules an engine builds whatever the checkpoint holds: "lm_head" (tied to the
  // embedding when tie_word_embeddings, still a module of its own in vLLM and transformers).
  static std::vector<std::string> implicit_linear_modules() { return {"lm_head"}; }
};

// What a config.json is read for: a source checkpoint (its quantization_config says how its own
// weights are stored, and anything but a format moequant reads is refused), or a folder moequant
// exported (its quantization_config is the export's, read by the engine view).
enum class ConfigOf { kSource, kExport };

// Reads and validates <dir>/config.json. Errors name the folder and the missing/invalid key;
// an unsupported model_type lists the supported ones.
ModelConfig read_model_config(const std::string& dir, ConfigOf of = ConfigOf::kSource);
// The same from a config.json already parsed (`file` names it in errors), for host programs
// that describe their own model.
ModelConfig parse_model_config(nlohmann::json raw, const std::string& dir, const std::string& file,
                               ConfigOf of = ConfigOf::kSource);

}  // namespace moequant
