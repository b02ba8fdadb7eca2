// The quantization formats of FORMATS.md.
#pragma once

#include <string>

namespace moequant {

enum class QuantFormat { kNone, kFP8, kNVFP4, kFP8Block, kINT4 };

// "none", "fp8", "nvfp4", "fp8_block", "int4".
const char* format_name(QuantFormat f);
// Parses a format name; throws moequant::Error listing the valid names when unknown.
QuantFormat format_from_name(const std::string& name);

}  // namespace moequant
