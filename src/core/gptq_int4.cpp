// int4 inside GPTQ's sweep (docs/formats.md#int4): when the sweep reaches a group of 128 columns,
// each row's scale is fp16(group_amax / 7) of the group's current, error-updated weights (1.0
// for an all-zero group); each column's code is clamp(rint(w / float(scale)), -8, 7) + 8, and its
// value (code - 8) * float(scale), exactly what a reader of the stored tensors computes.
#include <ATen/ATen.h>

#include "gptq_quantizer.h"
#include "moequant/common/error.h"
#include "moequant/common/strings.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

namespace {

class Int4ColumnQuantizer : public GptqColumnQuantizer {
 public:
  Int4ColumnQuantizer(int64_t experts, int64_t rows, int64_t cols, const at::TensorOptions& options,
                      std::vector<std::string> names)
      : rows_(rows), cols_(cols), names_(std::move(names)) {
    const int64_t groups = ceil_div(cols, num::kInt4Group);
    codes_ = at::empty({experts, cols, rows}, options.dtype(at::kByte));
    scales_ = at::empty({experts, groups, rows}, options.dtype(at::kHalf));
    // A tensor divisor, not a scalar: CUDA divides by a host scalar as a multiplication by its
    // reciprocal, which is not formats.md's correctly rounded division.
    seven_ = at::full({}, 7.0f, options.dtype(at::kFloat));
  }

  int64_t group_size() const override { return num::kInt4Group; }

  void start_group(int64_t first, const at::Tensor& current) override {
    const at::Tensor amax = current.abs().amax(1);  // [E, R]
    const at::Tensor scale = at::where(amax == 0, at::ones_like(amax), amax / seven_);
    const at::Tensor half = scale.to(at::kHalf);  // round to nearest even; >= 65520 gives inf
    scales_.select(1, first / num::kInt4Group).copy_(half);
    scale_ = half.to(at::kFloat);
  }

  at::Tensor quantize_column(int64_t col, const at::Tensor& w) override {
    // at::round rounds half to even; a NaN quotient (a scale that underflowed to fp16 zero, over
    // a zero weight) becomes the zero point, as in num::int4_code.
    at::Tensor q = at::round(w / scale_).clamp_(-8, 7).nan_to_num_(0.0);
    codes_.select(1, col).copy_(q + 8);
    return q * scale_;  // exact: a 4-bit integer times an fp16 value
  }

  std::vector<std::vector<StoredTensor>> stored() const override {
    const int64_t bad = first_failing(at::isfinite(scales_).flatten(1).all(1));
    MQ_CHECK(bad < 0, names_[static_cast<size_t>(bad)],
             ": an int4 group scale overflows fp16 (a group's largest weight after GPTQ's updates "
             "is 65520 * 7 or more)");
    const int64_t experts = codes_.size(0);
    // qweight[r, o] holds q[o, 8r + k] in bits 4k..4k+3: the codes [E, C, R] seen as
    // [E, C/8, 8, R], weighted by 16^k and summed in int64, then wrapped to int32.
    std::vector<int64_t> nibble_weights;
    for (int k = 0; k < 8; ++k) nibble_weights.push_back(int64_t{1} << (4 * k));
    const at::Tensor weights = at::tensor(nibble_weights, at::kLong).to(codes_.device());
    at::Tensor words =
        (codes_.view({experts, cols_ / 8, 8, rows_}).to(at::kLong) * weights.view({1, 1, 8, 1}))
            .sum(2);
    words = at::where(words >= (int64_t{1} << 31), words - (int64_t{1} << 32), words).to(at::kInt);
    const at::TensorOptions ints = codes_.options().dtype(at::kInt);
    std::vector<std::vector<StoredTensor>> out;
    for (int64_t e = 0; e < experts; ++e) {
      const std::string& name = names_[static_cast<size_t>(e)];
      out.push_back(stored_in_layout(
          QuantFormat::kINT4, rows_, cols_, name,
          {{"qweight", words[e]},
           {"qzeros", at::full({scales_.size(1), rows_ / 8}, int32_t{0x77777777}, ints)},
           {"scales", scales_[e]},
           {"g_idx", at::arange(cols_, ints).div_(num::kInt4Group, "floor")}}));
    }
    return out;
  }

 private:
  int64_t rows_, cols_;
  std::vector<std::string> names_;
  at::Tensor codes_;   // [E, C, R] uint8, 0..15
  at::Tensor scales_;  // [E, G, R] float16, the stored scales
  at::Tensor scale_;   // [E, R] float32, the current group's scales
  at::Tensor seven_;
};

}  // namespace

std::unique_ptr<GptqColumnQuantizer> make_int4_column_quantizer(
    int64_t experts, int64_t rows, int64_t cols, const at::TensorOptions& options,
    const std::vector<std::string>& names) {
  return std::make_unique<Int4ColumnQuantizer>(experts, rows, cols, options, names);
}

}  // namespace moequant
