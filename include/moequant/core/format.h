// The quantization formats (docs/formats.md), each described once, in one file of
// src/core/formats/: its name, the tensors it stores for a weight (suffixes, dtypes, shapes, shape
// rules), where its scales come from, the kernels that produce them, and the names a checkpoint
// declares it by. Everything else that needs to know something about a format asks its
// descriptor; a new format is one new descriptor.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "moequant/common/dtype.h"

namespace moequant {

enum class QuantFormat { kNone, kFP8, kNVFP4, kFP8Block, kINT4 };

// What a stored tensor holds, which also says which output of the quantize kernels it is.
enum class StoredRole {
  kWeight,      // the codes: "weight" (fp8, nvfp4, fp8_block) or "qweight" (int4)
  kScale,       // a scale: per tensor, per block, per tile or per group
  kZeros,       // int4 "qzeros"
  kGroupIndex,  // int4 "g_idx"
};

// One tensor stored for a weight [rows, cols]: `suffix` replaces "weight" in its name.
struct StoredTensorSpec {
  std::string suffix;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
  StoredRole role = StoredRole::kWeight;
  // A per-tensor scale computed on the host from the quantizer's amax (fp8 weight_scale, nvfp4
  // weight_scale_2), not by a kernel.
  bool from_amax = false;
};

// How a checkpoint declares a format: config.json's quantization_config (docs/formats.md, "The
// exported checkpoint").
struct SchemeNames {
  std::string quant_method;   // "modelopt", "fp8", "gptq"; "" for an unquantized checkpoint
  std::string modelopt_algo;  // ModelOpt quant_algo ("FP8", "NVFP4", "W4A16_NVFP4"), or ""
  std::string description;    // for tables and logs
};

struct FormatKernels;  // the format's kernel entries (src/core/formats/, private to core)

struct FormatDescriptor {
  QuantFormat id = QuantFormat::kNone;
  std::string name;  // "none", "fp8", "nvfp4", "fp8_block", "int4"
  // True when the weight's scale follows from its quantizer's amax (fp8, nvfp4); false when the
  // format derives its scales from the weight's own blocks (fp8_block, int4).
  bool scale_from_amax = false;
  // input_scale = input_amax / input_scale_divisor for static activations; 0 when the format
  // has none (weight-only formats).
  float input_scale_divisor = 0.0f;
  int bits = 16;                // bits per weight code
  int group_size = 0;           // elements per scale along `in` (nvfp4 16, int4 128), or 0
  std::vector<int> block_size;  // fp8_block's [128, 128] tiles, else empty
  // vLLM's and SGLang's fused MoE kernels take the format only when an expert's intermediate size
  // (per serving TP rank) is a multiple of this (fp8_block: 128; 0: no such rule).
  int64_t moe_intermediate_multiple = 0;
  // Scalar scales that gate and up of one expert must store with equal bytes: engines fuse the
  // two into one gate_up weight and keep a single value.
  std::vector<std::string> gate_up_shared_scalars;
  SchemeNames weights_only;      // the checkpoint written without calibrated activations
  SchemeNames with_activations;  // with static input scales (only where input_scale_divisor > 0)
  // The tensors stored for a [rows, cols] weight whose source dtype is `source`, in write order
  // (input_scale not included). Shape rules are checked here; errors name `name`.
  std::vector<StoredTensorSpec> (*layout)(int64_t rows, int64_t cols, DType source,
                                          const std::string& name) = nullptr;
  // The weight's [rows, cols] from the shape of its codes tensor (a reader's inverse of layout).
  std::vector<int64_t> (*weight_shape)(const std::vector<int64_t>& codes_shape) = nullptr;
  // The scale tensor whose largest value, times amax_per_scale, is the largest amax it encodes
  // (fp8: weight_scale x 448; int4: scales x 7), for reports.
  std::string amax_scale;
  float amax_per_scale = 0.0f;
  const FormatKernels* kernels = nullptr;

  std::vector<StoredTensorSpec> stored_tensors(int64_t rows, int64_t cols, DType source,
                                               const std::string& name) const {
    return layout(rows, cols, source, name);
  }
  bool has_static_activations() const { return input_scale_divisor > 0.0f; }
  bool quantizes() const { return id != QuantFormat::kNone; }
  // The suffix of the codes tensor ("weight" or "qweight").
  const std::string& weight_suffix() const;
};

// Every format, in QuantFormat order ("none" first).
const std::vector<const FormatDescriptor*>& all_formats();
const FormatDescriptor& format_descriptor(QuantFormat f);
// By name; an unknown name is an error listing the valid ones.
const FormatDescriptor& format_named(const std::string& name);
const char* format_name(QuantFormat f);
QuantFormat format_from_name(const std::string& name);

// The format a module is stored in, recognized from the suffixes present beside it
// (`has_suffix("weight_scale_2")`): the format with the most of its own tensors present, so that
// a damaged module is still recognized; none for a plain weight.
QuantFormat stored_format(const std::function<bool(const std::string& suffix)>& has_suffix);
// Every suffix some format stores beside a module, and "input_scale".
const std::vector<std::string>& all_stored_suffixes();
// True for a suffix that holds a scale in some format ("input_scale", and the KV cache's
// "k_scale" / "v_scale", included).
bool is_scale_suffix(const std::string& suffix);

}  // namespace moequant
