// An ExportSource over a host program's MoeExperts modules (keyed by global layer): shards are
// views of the modules' weights, quantizers the modules' own. No passthrough tensors.
#pragma once

#include <map>

#include "moequant/export/export_source.h"
#include "moequant/modules/moe_experts.h"

namespace moequant {

class ModuleExpertSource : public ExportSource {
 public:
  explicit ModuleExpertSource(std::map<int, MoeExperts> layers);
  DType expert_dtype() const override;
  // The format of the first layer's fc1 weight quantizer (the exporter checks the others).
  QuantFormat weight_format() const override;
  ExpertShard expert_shard(int layer, int expert, bool fc1) const override;
  std::shared_ptr<TensorQuantizer> weight_quantizer(int layer, int expert, bool fc1) const override;
  std::shared_ptr<TensorQuantizer> input_quantizer(int layer, int expert, bool fc1) const override;
  std::shared_ptr<TensorQuantizer> shared_input_quantizer(int layer, bool fc1) const override;

 private:
  GroupedLinear linear(int layer, bool fc1) const;
  int64_t local_index(int layer, int expert) const;
  std::map<int, MoeExperts> layers_;
};

}  // namespace moequant
