#include "moequant/common/format.h"

#include "moequant/common/error.h"

namespace moequant {

namespace {
struct FormatInfo {
  QuantFormat format;
  const char* name;
};
constexpr FormatInfo kFormats[] = {{QuantFormat::kNone, "none"},
                                   {QuantFormat::kFP8, "fp8"},
                                   {QuantFormat::kNVFP4, "nvfp4"},
                                   {QuantFormat::kFP8Block, "fp8_block"},
                                   {QuantFormat::kINT4, "int4"}};
}  // namespace

const char* format_name(QuantFormat f) {
  for (const auto& x : kFormats)
    if (x.format == f) return x.name;
  MQ_THROW("unknown format id ", static_cast<int>(f));
}

QuantFormat format_from_name(const std::string& name) {
  for (const auto& x : kFormats)
    if (name == x.name) return x.format;
  MQ_THROW("unknown format '", name, "' (expected one of: none, fp8, nvfp4, fp8_block, int4)");
}

}  // namespace moequant
