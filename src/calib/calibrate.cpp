#include "moequant/calib/calibrate.h"

#include <ATen/core/grad_mode.h>
#include <fnmatch.h>

#include <map>
#include <regex>

#include "moequant/common/error.h"
#include "moequant/core/multi_amax.h"

namespace moequant {

bool pattern_matches(const std::string& pattern, const std::string& name) {
  if (pattern.rfind("re:", 0) == 0) {
    try {
      return std::regex_search(name, std::regex(pattern.substr(3)));
    } catch (const std::regex_error& e) {
      MQ_THROW("invalid regular expression in pattern '", pattern, "': ", e.what());
    }
  }
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

ModuleFilter::ModuleFilter(std::vector<std::string> include, std::vector<std::string> exclude)
    : include_(std::move(include)), exclude_(std::move(exclude)) {}

bool ModuleFilter::accepts(const std::string& module_name) const {
  bool included = include_.empty();
  for (const auto& p : include_) included = included || pattern_matches(p, module_name);
  if (!included) return false;
  for (const auto& p : exclude_)
    if (pattern_matches(p, module_name)) return false;
  return true;
}

std::vector<QuantModuleRef> find_quant_modules(torch::nn::Module& root,
                                               const ModuleFilter& filter) {
  // The root is visited by reference: it may live on the stack, which named_modules() with
  // include_self would reject.
  std::vector<std::pair<std::string, torch::nn::Module*>> all{{"", &root}};
  for (const auto& item : root.named_modules(/*name_prefix=*/"", /*include_self=*/false))
    all.emplace_back(item.key(), item.value().get());
  std::vector<QuantModuleRef> found;
  for (const auto& [name, module] : all) {
    auto* qm = dynamic_cast<QuantModule*>(module);
    if (qm == nullptr) continue;
    for (auto& nq : qm->named_quantizers())
      nq.second->set_name(name.empty() ? nq.first : name + "." + nq.first);
    if (!filter.accepts(name)) {
      for (auto& nq : qm->named_quantizers()) nq.second->set_enabled(false);
      continue;
    }
    found.push_back({name, qm});
  }
  return found;
}

WeightCalibrationReport calibrate_pairs(const std::vector<CalibPair>& pairs, bool reset) {
  struct SlotRange {
    size_t first;
    size_t count;
  };
  WeightCalibrationReport report;
  // One slot range per distinct quantizer; experts sharing a quantizer share its range.
  std::map<TensorQuantizer*, SlotRange> range_of;
  std::vector<std::shared_ptr<TensorQuantizer>> quantizers;
  std::vector<AmaxTask> tasks;
  size_t num_slots = 0;
  for (const CalibPair& pair : pairs) {
    if (!pair.weight.defined() || !pair.quantizer) continue;
    TensorQuantizer* q = pair.quantizer.get();
    const bool per_channel = q->axis() == AmaxAxis::kPerChannel;
    const size_t count = per_channel ? static_cast<size_t>(pair.weight.size(0)) : 1;
    auto it = range_of.find(q);
    if (it == range_of.end()) {
      if (reset) q->reset();
      it = range_of.emplace(q, SlotRange{num_slots, count}).first;
      num_slots += count;
      quantizers.push_back(pair.quantizer);
    }
    MQ_CHECK(it->second.count == count, pair.weight_name, ": ", count, " rows, but quantizer '",
             q->name(), "' is per-channel over ", it->second.count, " rows");
    tasks.push_back(
        AmaxTask{pair.weight.detach(), per_channel, it->second.first, pair.weight_name});
  }
  std::vector<float> slots(num_slots, 0.0f);
  multi_amax(tasks, slots);
  for (const auto& q : quantizers) {
    const SlotRange& r = range_of.at(q.get());
    q->merge_amax(slots.data() + r.first, r.count);
  }
  report.tensors = tasks.size();
  report.quantizers = quantizers.size();
  return report;
}

WeightCalibrationReport calibrate_weights(torch::nn::Module& root, const ModuleFilter& filter) {
  std::vector<CalibPair> pairs;
  size_t modules = 0;
  for (const auto& ref : find_quant_modules(root, filter)) {
    ++modules;
    for (CalibPair pair : ref.module->iter_weights_for_calibration()) {
      if (!ref.name.empty()) pair.weight_name = ref.name + "." + pair.weight_name;
      pairs.push_back(std::move(pair));
    }
  }
  WeightCalibrationReport report = calibrate_pairs(pairs);
  report.modules = modules;
  return report;
}

CalibrationMode::CalibrationMode(torch::nn::Module& root, const ModuleFilter& filter)
    : modules_(find_quant_modules(root, filter)), previous_grad_mode_(at::GradMode::is_enabled()) {
  at::GradMode::set_enabled(false);
  for (auto& ref : modules_) ref.module->set_calibrating(true);
}

CalibrationMode::~CalibrationMode() {
  for (auto& ref : modules_) ref.module->set_calibrating(false);
  at::GradMode::set_enabled(previous_grad_mode_);
}

}  // namespace moequant
