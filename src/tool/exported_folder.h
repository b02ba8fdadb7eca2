// Helpers shared by `moequant inspect` and `moequant verify`: reading an exported folder's
// format from its config.json, naming stored tensors, and reading scale values from raw bytes.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "moequant/common/dtype.h"
#include "moequant/common/error.h"
#include "moequant/common/limited_json.h"
#include "moequant/common/regular_file.h"
#include "moequant/common/strings.h"
#include "moequant/core/format.h"
#include "moequant/export/engine_view.h"
#include "moequant/export/scale_checks.h"
#include "moequant/kernels/numerics.h"

namespace moequant::tool {

// Reads <dir>/config.json; `what` names the folder in errors ("quantized folder").
inline nlohmann::json read_folder_config(const std::string& dir, const std::string& what) {
  std::error_code ec;
  MQ_CHECK(std::filesystem::is_directory(dir, ec), what, " '", dir,
           "' does not exist or is not a folder");
  const std::string file = dir + "/config.json";
  MQ_CHECK(path_exists(file), what, " '", dir, "' has no config.json");
  const nlohmann::json j = read_json_file(file, kMaxConfigFileBytes);
  MQ_CHECK(j.is_object(), file, ": expected a JSON object");
  return j;
}

// The weight format an exported config.json declares, read as the engines read it
// (engine_view.h): modelopt FP8 -> fp8, NVFP4 / W4A16_NVFP4 -> nvfp4, fp8 -> fp8 (per tensor) or
// fp8_block (with weight_block_size), gptq -> int4, none.
inline QuantFormat format_of_config(const nlohmann::json& config, const std::string& file) {
  return engine_view_of(config, file).format;
}

// Splits "a.b.gate_proj.weight_scale" into base "a.b.gate_proj" and suffix "weight_scale";
// a name without a known suffix is its own base with an empty suffix.
inline std::pair<std::string, std::string> split_stored_name(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot != std::string::npos) {
    const std::string suffix = name.substr(dot + 1);
    for (const std::string& s : all_stored_suffixes())
      if (s == suffix) return {name.substr(0, dot), suffix};
  }
  return {name, ""};
}

// Element i of a tensor's raw bytes as float (F32, F16, BF16, F8_E4M3); the bytes may be
// unaligned (safetensors data offsets are not), hence memcpy.
inline float element_as_float(const uint8_t* data, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, data + 4 * i, 4);
      return v;
    }
    case DType::kF16:
    case DType::kBF16: {
      uint16_t h;
      std::memcpy(&h, data + 2 * i, 2);
      return dtype == DType::kF16 ? num::half_to_float(h) : num::bf16_to_float(h);
    }
    case DType::kF8E4M3:
      return num::e4m3_to_float(data[i]);
    default:
      MQ_THROW("cannot read a ", dtype_name(dtype), " tensor as scale values");
  }
}

// Min and max of a scale tensor, and whether every element is valid (is_valid_scale).
struct ScaleRange {
  float min = 0, max = 0;
  bool valid = true;  // every element finite and positive (is_valid_scale)
  int64_t first_bad = -1;
};

inline ScaleRange scale_range(const uint8_t* data, DType dtype, int64_t numel) {
  ScaleRange r;
  bool seen = false;
  for (int64_t i = 0; i < numel; ++i) {
    const float v = element_as_float(data, dtype, i);
    if (!is_valid_scale(v)) {
      if (r.valid) r.first_bad = i;
      r.valid = false;
      continue;
    }
    if (!seen || v < r.min) r.min = v;
    if (!seen || v > r.max) r.max = v;
    seen = true;
  }
  return r;
}

}  // namespace moequant::tool
