#include "moequant/common/dtype.h"

#include "moequant/common/error.h"

namespace moequant {

namespace {
struct DTypeInfo {
  DType type;
  const char* name;
  int64_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::kBF16, "BF16", 2},      {DType::kF16, "F16", 2}, {DType::kF32, "F32", 4},
    {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kU8, "U8", 1},   {DType::kI8, "I8", 1},
    {DType::kI32, "I32", 4},        {DType::kI64, "I64", 8}, {DType::kF64, "F64", 8},
    {DType::kBool, "BOOL", 1},
};
const DTypeInfo& info(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d;
  MQ_THROW("unknown dtype id ", static_cast<int>(t));
}
}  // namespace

int64_t dtype_size(DType t) {
  return info(t).size;
}
const char* dtype_name(DType t) {
  return info(t).name;
}

DType dtype_from_name(const std::string& name, const std::string& context) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.type;
  MQ_THROW(context, ": unsupported dtype '", name, "'");
}

}  // namespace moequant
