#include "moequant/export/export_source.h"

#include "moequant/common/error.h"

namespace moequant {

void ExportSource::prefetch_expert(int, int, bool) const {}
void ExportSource::release_expert(int, int, bool) const {}

std::vector<PassthroughTensor> ExportSource::passthrough_tensors() const {
  return {};
}

std::vector<std::string> ExportSource::side_files() const {
  return {};
}

at::Tensor ExportSource::passthrough_data(const std::string& name) const {
  MQ_THROW("this export source holds no passthrough tensor '", name, "'");
}

void ExportSource::release_passthrough(const std::string&) const {}

at::Tensor ExportSource::dense_weight(const DenseLinear& linear) const {
  MQ_THROW("this export source holds no dense linear '", linear.module, "'");
}

std::shared_ptr<TensorQuantizer> ExportSource::dense_weight_quantizer(int layer,
                                                                      TensorUse group) const {
  MQ_THROW("this export source holds no quantizer of layer ", layer, "'s ", use_name(group));
}

std::shared_ptr<TensorQuantizer> ExportSource::dense_input_quantizer(int layer,
                                                                     TensorUse group) const {
  MQ_THROW("this export source holds no input quantizer of layer ", layer, "'s ", use_name(group));
}

std::shared_ptr<TensorQuantizer> ExportSource::kv_cache_quantizer(int layer, bool) const {
  MQ_THROW("this export source holds no KV-cache quantizer of layer ", layer);
}

}  // namespace moequant
