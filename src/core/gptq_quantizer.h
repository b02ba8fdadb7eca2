// The format's quantizer as GPTQ's column sweep uses it (src/core/gptq_solver.cpp), over the E
// matrices of one call at once. Private to core.
//
// The sweep works in a transposed layout, wt [E, C, R]: column c of every matrix is the [E, R]
// slice wt[:, c, :]. Every rounding is formats.md's, written with ATen element-wise ops (true
// divisions by tensors, round half to even, RNE float16 conversion, exact comparisons), which
// give the same bits on the CPU and on CUDA.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "moequant/core/format.h"
#include "moequant/core/quantize.h"

namespace moequant {

class GptqColumnQuantizer {
 public:
  virtual ~GptqColumnQuantizer() = default;
  // Columns per scale group whose scales come from the current (error-updated) weights when the
  // sweep reaches the group (int4: 128); 0 when every scale is fixed before the sweep (nvfp4).
  virtual int64_t group_size() const = 0;
  // The group starting at column `first`, with its current weights [E, n, R].
  virtual void start_group(int64_t first, const at::Tensor& current) = 0;
  // Column `col` with current weights w [E, R]: records its codes and returns the values they
  // dequantize to, [E, R] float32.
  virtual at::Tensor quantize_column(int64_t col, const at::Tensor& w) = 0;
  // Every matrix's stored tensors (layout order), once every column is quantized.
  virtual std::vector<std::vector<StoredTensor>> stored() const = 0;
};

// int4 (GPTQ v1, symmetric, groups of 128 along C) for E matrices [R, C] on `options`' device.
std::unique_ptr<GptqColumnQuantizer> make_int4_column_quantizer(
    int64_t experts, int64_t rows, int64_t cols, const at::TensorOptions& options,
    const std::vector<std::string>& names);

// nvfp4 for w [E, R, C] (bf16, fp16 or fp32: the weights before the sweep, which fix the block
// scales) with one quantizer amax per matrix.
std::unique_ptr<GptqColumnQuantizer> make_nvfp4_column_quantizer(
    const at::Tensor& w, const std::vector<float>& amax, const std::vector<std::string>& names);

// One matrix's stored tensors in `format`'s layout order, each taken from `data` by suffix and
// checked against the layout's shape and storage dtype.
std::vector<StoredTensor> stored_in_layout(QuantFormat format, int64_t rows, int64_t cols,
                                           const std::string& name,
                                           const std::map<std::string, at::Tensor>& data);

// The index of the first matrix whose flag in `ok` ([E] bool) is false, or -1.
int64_t first_failing(const at::Tensor& ok);

}  // namespace moequant
