// Storage dtypes of tensors in checkpoints, named as safetensors names them.
#pragma once

#include <cstdint>
#include <string>

namespace moequant {

enum class DType : int { kBF16, kF16, kF32, kF8E4M3, kU8, kI8, kI32, kI64, kF64, kBool };

// Bytes per element.
int64_t dtype_size(DType t);
// safetensors name ("BF16", "F8_E4M3", ...).
const char* dtype_name(DType t);
// Parses a safetensors dtype name; throws moequant::Error naming `context` when unknown.
DType dtype_from_name(const std::string& name, const std::string& context);

}  // namespace moequant
