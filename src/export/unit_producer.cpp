#include "unit_producer.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>

#include "moequant/common/error.h"
#include "moequant/core/quantize.h"
#include "moequant/core/tensor_bridge.h"
#include "moequant/export/scale_checks.h"

namespace moequant::export_detail {

std::vector<at::Tensor> assemble_unit(const std::vector<ExpertShard>& shards, bool fc1) {
  MQ_CHECK(!shards.empty(), "internal: an expert unit without shards");
  if (!fc1) {
    if (shards.size() == 1) return {shards[0].down};
    std::vector<at::Tensor> cols;
    for (const ExpertShard& s : shards) cols.push_back(s.down);
    return {at::cat(cols, 1)};
  }
  if (shards.size() == 1) return {shards[0].gate, shards[0].up};
  std::vector<at::Tensor> gates, ups;
  for (const ExpertShard& s : shards) {
    gates.push_back(s.gate);
    ups.push_back(s.up);
  }
  return {at::cat(gates, 0), at::cat(ups, 0)};
}

float unit_input_amax(const ExportSource& source, const PlannedUnit& unit, bool* fell_back) {
  *fell_back = false;
  const auto q = source.input_quantizer(unit.layer, unit.expert, unit.fc1);
  float amax = q->is_calibrated() ? q->amax_scalar() : -1.0f;
  if (amax < 0) {
    const auto shared = source.shared_input_quantizer(unit.layer, unit.fc1);
    MQ_CHECK(shared->is_calibrated(), "input quantizer '", q->name(),
             "' saw no tokens, and neither did any other expert of layer ", unit.layer,
             " (no calibration token was routed to the layer): its input_scale would be missing");
    amax = shared->amax_scalar();
    *fell_back = true;
  }
  MQ_CHECK(amax > 0.0f && std::isfinite(amax), "input quantizer '", q->name(), "' has amax ", amax,
           ": its input_scale would load as 1/0 = NaN in serving engines");
  return amax;
}

std::vector<at::Tensor> finish_unit(const ExportPlan& plan, const PlannedUnit& unit,
                                    const std::vector<std::vector<StoredTensor>>& stored,
                                    float input_amax) {
  MQ_CHECK(stored.size() == unit.weights.size(), "internal: layer ", unit.layer, " expert ",
           unit.expert, " produced ", stored.size(), " of its ", unit.weights.size(), " weights");
  const FormatDescriptor& format = format_descriptor(unit.format);
  std::vector<at::Tensor> out;
  std::map<std::string, at::Tensor> by_name;
  size_t next = 0;  // position in unit.tensors
  for (size_t w = 0; w < stored.size(); ++w) {
    const std::string base = unit.weights[w].substr(0, unit.weights[w].rfind('.'));
    std::vector<StoredTensor> tensors = stored[w];
    if (input_amax >= 0.0f && format.has_static_activations())
      tensors.push_back({"input_scale",
                         DType::kF32,
                         {},
                         at::full({}, input_amax / format.input_scale_divisor, at::kFloat)});
    for (const StoredTensor& s : tensors) {
      MQ_CHECK(next < unit.tensors.size(), "internal: '", base, "' produced more tensors (",
               s.suffix, ") than planned");
      const PlannedTensor& t = plan.tensors[unit.tensors[next++]];
      const std::string name = base + "." + s.suffix;
      at::Tensor host = s.data.to(at::kCPU).contiguous();
      MQ_CHECK(t.name == name && static_cast<uint64_t>(host.nbytes()) == t.nbytes, "internal: '",
               name, "' (", host.nbytes(), " bytes) does not match the planned '", t.name, "' (",
               t.nbytes, " bytes)");
      check_scale_tensor(name, s.dtype, host);
      by_name[s.suffix + (w == 1 ? "#up" : "")] = host;
      out.push_back(std::move(host));
    }
  }
  MQ_CHECK(next == unit.tensors.size(), "internal: layer ", unit.layer, " expert ", unit.expert,
           " produced ", next, " of its ", unit.tensors.size(), " planned tensors");
  if (unit.fc1) {
    // Serving engines fuse gate and up and keep one scalar scale: the bytes must be equal.
    for (const std::string& suffix : format.gate_up_shared_scalars) {
      auto g = by_name.find(suffix), u = by_name.find(suffix + "#up");
      if (g == by_name.end() || u == by_name.end()) continue;
      MQ_CHECK(at::equal(g->second, u->second), "gate and up of layer ", unit.layer, " expert ",
               unit.expert, " have different ", suffix);
    }
  }
  return out;
}

std::vector<at::Tensor> quantize_unit(const ExportPlan& plan, const PlannedUnit& unit,
                                      const std::vector<at::Tensor>& weights, const UnitAmax& amax,
                                      const std::string& device) {
  const at::Device dev(device);
  std::vector<std::vector<StoredTensor>> stored;
  for (size_t w = 0; w < weights.size(); ++w)
    stored.push_back(quantize_weight(weights[w].device() == dev ? weights[w] : weights[w].to(dev),
                                     unit.format, amax.weight, unit.weights.at(w)));
  return finish_unit(plan, unit, stored, amax.input);
}

}  // namespace moequant::export_detail
