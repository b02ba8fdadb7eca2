#include "moequant/export/module_expert_source.h"

#include "moequant/common/error.h"
#include "moequant/core/tensor_bridge.h"

namespace moequant {

ModuleExpertSource::ModuleExpertSource(std::map<int, MoeExperts> layers)
    : layers_(std::move(layers)) {
  MQ_CHECK(!layers_.empty(), "ModuleExpertSource: no MoE layers given");
}

GroupedLinear ModuleExpertSource::linear(int layer, bool fc1) const {
  auto it = layers_.find(layer);
  MQ_CHECK(it != layers_.end(), "this rank holds no experts of layer ", layer);
  return fc1 ? it->second->linear_fc1 : it->second->linear_fc2;
}

int64_t ModuleExpertSource::local_index(int layer, int expert) const {
  const GroupedLinear g = linear(layer, true);
  const int64_t i = expert - g->options().first_global_expert;
  MQ_CHECK(i >= 0 && i < g->num_gemms(), "this rank does not hold expert ", expert, " of layer ",
           layer);
  return i;
}

QuantFormat ModuleExpertSource::weight_format() const {
  return layers_.begin()->second->linear_fc1->quantizer_for(0)->format();
}

DType ModuleExpertSource::expert_dtype() const {
  return checkpoint_dtype(
      at::empty({0}, at::TensorOptions().dtype(layers_.begin()->second->options().dtype)));
}

ExpertShard ModuleExpertSource::expert_shard(int layer, int expert, bool fc1) const {
  const at::Tensor w = linear(layer, fc1)->weight(local_index(layer, expert)).detach();
  MQ_CHECK(w.defined(), "layer ", layer, " expert ", expert, (fc1 ? " fc1" : " fc2"),
           ": the module holds no weight (was it released?)");
  if (!fc1) return {at::Tensor(), at::Tensor(), w};
  const int64_t half = w.size(0) / 2;  // [gate_r; up_r]
  return {w.narrow(0, 0, half), w.narrow(0, half, half), at::Tensor()};
}

std::shared_ptr<TensorQuantizer> ModuleExpertSource::weight_quantizer(int layer, int expert,
                                                                      bool fc1) const {
  return linear(layer, fc1)->quantizer_for(local_index(layer, expert));
}

std::shared_ptr<TensorQuantizer> ModuleExpertSource::input_quantizer(int layer, int expert,
                                                                     bool fc1) const {
  return linear(layer, fc1)->input_quantizer_for(local_index(layer, expert));
}

std::shared_ptr<TensorQuantizer> ModuleExpertSource::shared_input_quantizer(int layer,
                                                                            bool fc1) const {
  return linear(layer, fc1)->input_quantizer;
}

}  // namespace moequant
