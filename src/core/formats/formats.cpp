// The registry of formats (one file each beside this) and the questions asked of all of them.
#include "formats.h"

#include <algorithm>
#include <set>

#include "moequant/common/error.h"
#include "moequant/common/strings.h"

namespace moequant {

const std::vector<const FormatDescriptor*>& all_formats() {
  static const std::vector<const FormatDescriptor*> all = {
      &none_format(), &fp8_format(), &nvfp4_format(), &fp8_block_format(), &int4_format()};
  return all;
}

const std::string& FormatDescriptor::weight_suffix() const {
  static const std::string weight = "weight", qweight = "qweight";
  // The codes tensor is the only kWeight one; its suffix does not depend on the shape.
  for (const StoredTensorSpec& s : layout(8, 128, DType::kBF16, name))
    if (s.role == StoredRole::kWeight) return s.suffix == qweight ? qweight : weight;
  return weight;
}

const FormatDescriptor& format_descriptor(QuantFormat f) {
  for (const FormatDescriptor* d : all_formats())
    if (d->id == f) return *d;
  MQ_THROW("unknown format id ", static_cast<int>(f));
}

const FormatDescriptor& format_named(const std::string& name) {
  std::vector<std::string> names;
  for (const FormatDescriptor* d : all_formats()) {
    if (d->name == name) return *d;
    names.push_back(d->name);
  }
  MQ_THROW("unknown format '", name, "' (expected one of: ", join(names), ")");
}

const char* format_name(QuantFormat f) {
  return format_descriptor(f).name.c_str();
}

QuantFormat format_from_name(const std::string& name) {
  return format_named(name).id;
}

QuantFormat stored_format(const std::function<bool(const std::string& suffix)>& has_suffix) {
  // The format with the most of its own tensors present (a plain "weight" says nothing), ties to
  // the one missing fewer: a damaged module is still recognized, and its missing tensors named.
  QuantFormat best = QuantFormat::kNone;
  int best_present = 0, best_missing = 0;
  for (const FormatDescriptor* d : all_formats()) {
    if (!d->quantizes()) continue;
    int present = 0, missing = 0;
    for (const StoredTensorSpec& s : d->stored_tensors(8, 128, DType::kBF16, d->name)) {
      if (s.suffix == "weight") continue;
      (has_suffix(s.suffix) ? present : missing) += 1;
    }
    if (present > best_present ||
        (present == best_present && present > 0 && missing < best_missing)) {
      best = d->id;
      best_present = present;
      best_missing = missing;
    }
  }
  return best;
}

const std::vector<std::string>& all_stored_suffixes() {
  static const std::vector<std::string> all = [] {
    std::vector<std::string> out;
    for (const FormatDescriptor* d : all_formats())
      for (const StoredTensorSpec& s : d->stored_tensors(8, 128, DType::kBF16, d->name))
        if (std::find(out.begin(), out.end(), s.suffix) == out.end()) out.push_back(s.suffix);
    out.push_back("input_scale");
    return out;
  }();
  return all;
}

bool is_scale_suffix(const std::string& suffix) {
  static const std::set<std::string> scales = [] {
    // Activation and KV-cache scales are scales whatever the weight format.
    std::set<std::string> out = {"input_scale", "k_scale", "v_scale"};
    for (const FormatDescriptor* d : all_formats())
      for (const StoredTensorSpec& s : d->stored_tensors(8, 128, DType::kBF16, d->name))
        if (s.role == StoredRole::kScale) out.insert(s.suffix);
    return out;
  }();
  return scales.count(suffix) > 0;
}

}  // namespace moequant
