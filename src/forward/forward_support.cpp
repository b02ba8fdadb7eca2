#include "moequant/forward/forward_support.h"

#include "moequant/common/error.h"
#include "moequant/common/strings.h"

namespace moequant {

namespace {

// What a layer of this kind is called, and its layer_types name; nullptr: the forward has it.
const char* mixer_missing(LayerMixer m, const char** type) {
  switch (m) {
    case LayerMixer::kFullAttention:
      return nullptr;
    case LayerMixer::kSlidingAttention:  // GPT-OSS's (gpt_oss_ops.h)
      return nullptr;
    case LayerMixer::kChunkedAttention:
      *type = "chunked_attention";
      return "chunked attention";
    case LayerMixer::kGatedDeltaNet:
      *type = "linear_attention";
      return "Gated DeltaNet linear attention";
  }
  return nullptr;
}

}  // namespace

std::string forward_missing(const ModelConfig& c, const DecoderConfig& d) {
  for (int l = 0; l < c.num_layers; ++l) {
    const char* type = "";
    if (const char* m = mixer_missing(d.mixer(l), &type))
      return str_cat(m, " (", type, " layers, e.g. layer ", l, ")");
  }
  if (d.gated_query) return "gated attention (q_proj giving query and gate)";
  if (d.qk_l2_norm) return "the L2 q/k norm (use_qk_norm)";
  if (d.router == RouterKind::kSigmoidTopK) return "the sigmoid router scaling expert inputs";
  return "";
}

void check_forward_supports(const ModelConfig& c, const DecoderConfig& d, const std::string& what) {
  const std::string missing = forward_missing(c, d);
  MQ_CHECK(missing.empty(), c.dir.empty() ? std::string("config.json") : c.dir + "/config.json",
           ": ", what, " runs moequant's forward of the ", c.model_type,
           " model, which does not compute ", missing,
           " yet; export weights only (without --calib-data)");
}

}  // namespace moequant
