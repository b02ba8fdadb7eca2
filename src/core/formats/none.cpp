// "none": the weight stored as it is, in the source dtype (an unquantized export, or an excluded
// module).
#include "formats.h"

namespace moequant {

namespace {

std::vector<StoredTensorSpec> layout(int64_t rows, int64_t cols, DType source, const std::string&) {
  return {{"weight", source, {rows, cols}, StoredRole::kWeight}};
}

std::vector<int64_t> weight_shape(const std::vector<int64_t>& codes) {
  return codes;
}

}  // namespace

const FormatDescriptor& none_format() {
  static const FormatDescriptor d = [] {
    FormatDescriptor f;
    f.id = QuantFormat::kNone;
    f.name = "none";
    f.weights_only = {"", "", "unquantized (source dtype)"};
    f.layout = layout;
    f.weight_shape = weight_shape;
    return f;
  }();
  return d;
}

}  // namespace moequant
