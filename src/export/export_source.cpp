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

}  // namespace moequant
