// Mixtral: routed experts at model.layers.{L}.block_sparse_moe.experts.{E}.{w1,w3,w2} (w1 = gate,
// w3 = up, w2 = down), router block_sparse_moe.gate, every layer MoE, experts of
// intermediate_size; the top-k router weights always renormalized.
#include "families.h"
#include "moequant/common/error.h"

namespace moequant {

namespace {

class Mixtral : public ModelFamily {
 public:
  std::vector<std::string> model_types() const override { return {"mixtral"}; }
  int64_t expert_intermediate(const nlohmann::json& c, const std::string& file) const override {
    return config_int(c, {"intermediate_size"}, file, 1, kMaxWidth);
  }
  void configure(DecoderConfig& d, const nlohmann::json&, const std::string&) const override {
    d.normalize_topk = true;
  }
  std::string moe_block(int layer) const override {
    return layer_prefix(layer) + "block_sparse_moe";
  }
  std::string expert_proj(ExpertProj p) const override {
    return p == ExpertProj::kGate ? "w1" : p == ExpertProj::kUp ? "w3" : "w2";
  }
  nlohmann::json synthetic_config(const ModelShape& s) const override {
    MQ_CHECK(s.dense_layers.empty(), "mixtral has no dense layers");
    nlohmann::json c = synthetic_base_config(s, "mixtral", "MixtralForCausalLM");
    c["num_local_experts"] = s.experts;
    c["intermediate_size"] = s.intermediate;
    c["rope_parameters"]["rope_theta"] = 1e6;
    return c;
  }
};

}  // namespace

const ModelFamily& mixtral_family() {
  static const Mixtral family;
  return family;
}

}  // namespace moequant
