// The quantizers beyond the routed experts, for the layers of this rank's pipeline stage:
// `--quantize all-linear`'s dense linears (attention, shared experts, dense MLPs) and
// `--kv-cache fp8`'s key and value quantizers (docs/design.md, "Dense linears and the KV cache").
//
// A fusion group (q/k/v; MLA's q_a with kv_a; gate with up) holds ONE weight and ONE input
// quantizer, as Megatron's fused linear_qkv / linear_fc1 does and as the engines need (they load
// the group as one linear with one scale). Weights are split over TP the Megatron way
// (model_tensors.h, TpSplit): each TP rank observes its shard and the amax is MAX-reduced over TP;
// inputs and the KV cache over TP and DP.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <vector>

#include "moequant/model/model_tensors.h"
#include "moequant/modules/quant_module.h"

namespace moequant {

class DenseGroupImpl : public torch::nn::Module, public QuantModule {
 public:
  DenseGroupImpl(std::vector<DenseLinear> members, QuantFormat format);
  const std::vector<DenseLinear>& members() const { return members_; }
  // Their weights are read when observed (HfMoeModel::calibrate_dense_weights), not held.
  std::vector<CalibPair> iter_weights_for_calibration() override { return {}; }

 private:
  std::vector<DenseLinear> members_;
};
TORCH_MODULE(DenseGroup);

// One attention layer's KV cache: ModelOpt's k_bmm_quantizer and v_bmm_quantizer, observing the
// keys (after the q/k norm and RoPE) and the values as the cache holds them.
class KvCacheQuantizersImpl : public torch::nn::Module, public QuantModule {
 public:
  KvCacheQuantizersImpl();
  std::vector<CalibPair> iter_weights_for_calibration() override { return {}; }
  std::vector<NamedQuantizer> named_quantizers() override;
  std::shared_ptr<TensorQuantizer> keys, values;
};
TORCH_MODULE(KvCacheQuantizers);

}  // namespace moequant
