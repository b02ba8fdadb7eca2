// nvfp4 inside GPTQ's sweep (docs/formats.md#nvfp4). weight_scale_2 and the per-16 e4m3 block
// scales are fixed before the sweep from the weights as given (ModelOpt's GPTQ does the same), by
// the format's own quantizer (quantize_weight), so they are byte for byte the round-to-nearest
// export's. Each column's e2m1 code is then taken from y = w / (float(block_scale) *
// weight_scale_2), and its value is e2m1(code) * (float(block_scale) * weight_scale_2), the
// product the dequantizer multiplies by.
#include <ATen/ATen.h>

#include <cmath>

#include "gptq_quantizer.h"
#include "moequant/common/error.h"
#include "moequant/kernels/numerics.h"

namespace moequant {

namespace {

// e2m1's rounding as a search: the magnitude's index is the number of boundaries below it. The
// midpoints that tie to the lower (even) index are kept; those that tie upwards are replaced by
// the float just below them, so that the tie itself counts as above.
at::Tensor e2m1_boundaries(const at::Device& device) {
  const float up = INFINITY;
  const std::vector<float> b = {
      0.25f, std::nextafter(0.75f, -up), 1.25f, std::nextafter(1.75f, -up),
      2.5f,  std::nextafter(3.5f, -up),  5.0f};
  return at::tensor(b, at::kFloat).to(device);
}

// Every code's value: 0..7 positive, 8..15 negative (8 is -0.0).
at::Tensor e2m1_values(const at::Device& device) {
  std::vector<float> v;
  for (uint32_t c = 0; c < 16; ++c) v.push_back(num::e2m1_to_float(static_cast<uint8_t>(c)));
  return at::tensor(v, at::kFloat).to(device);
}

// float(e4m3 byte) for all 256 bytes.
at::Tensor e4m3_values(const at::Device& device) {
  std::vector<float> v;
  for (uint32_t c = 0; c < 256; ++c) v.push_back(num::e4m3_to_float(static_cast<uint8_t>(c)));
  return at::tensor(v, at::kFloat).to(device);
}

class Nvfp4ColumnQuantizer : public GptqColumnQuantizer {
 public:
  Nvfp4ColumnQuantizer(const at::Tensor& w, const std::vector<float>& amax,
                       std::vector<std::string> names)
      : names_(std::move(names)) {
    const int64_t experts = w.size(0), rows = w.size(1), cols = w.size(2);
    rows_ = rows;
    cols_ = cols;
    std::vector<at::Tensor> block_scales, scale2;
    for (int64_t e = 0; e < experts; ++e) {
      const std::string& name = names_[static_cast<size_t>(e)];
      std::vector<StoredTensor> rtn =
          quantize_weight(w[e], QuantFormat::kNVFP4, {amax[static_cast<size_t>(e)]}, name);
      block_scales.push_back(find_stored(rtn, "weight_scale", name).data);
      scale2.push_back(find_stored(rtn, "weight_scale_2", name).data);
    }
    block_scales_ = at::stack(block_scales);  // [E, R, C/16] e4m3 bytes
    scale2_ = at::stack(scale2);              // [E] float32
    const at::Tensor decoded =
        e4m3_values(w.device()).index_select(0, block_scales_.flatten().to(at::kLong));
    // [E, C/16, R]: the divisor of each block, the product rounded to float32 first
    divisors_ = (decoded.view(block_scales_.sizes()) * scale2_.view({experts, 1, 1}))
                    .transpose(1, 2)
                    .contiguous();
    // Only a weight_scale_2 so small that the product underflows to zero makes y NaN (0 / 0).
    zero_divisor_ = (divisors_ == 0).any().item<bool>();
    boundaries_ = e2m1_boundaries(w.device());
    values_ = e2m1_values(w.device());
    codes_ = at::empty({experts, cols, rows}, w.options().dtype(at::kByte));
  }

  int64_t group_size() const override { return 0; }
  void start_group(int64_t, const at::Tensor&) override {}

  at::Tensor quantize_column(int64_t col, const at::Tensor& w) override {
    const at::Tensor divisor = divisors_.select(1, col / num::kNvfp4Block);  // [E, R]
    const at::Tensor y = w / divisor;
    at::Tensor index = at::bucketize(y.abs(), boundaries_);  // int64, 0..7
    if (zero_divisor_) index = at::where(at::isnan(y), at::full_like(index, 7), index);
    // bit 3 is (y < 0): a negative that rounds to zero is code 8, -0.0 is code 0
    const at::Tensor code = index.add_((y < 0).to(at::kLong), /*alpha=*/8);
    codes_.select(1, col).copy_(code);
    return at::take(values_, code) * divisor;
  }

  std::vector<std::vector<StoredTensor>> stored() const override {
    const int64_t experts = codes_.size(0);
    // weight [R, C/2]: byte j of a row holds column 2j in its low nibble, 2j + 1 in its high one
    const at::Tensor pairs =
        codes_.transpose(1, 2).contiguous().view({experts, rows_, cols_ / 2, 2});
    const at::Tensor packed = pairs.select(3, 0).add(pairs.select(3, 1), /*alpha=*/16);
    std::vector<std::vector<StoredTensor>> out;
    for (int64_t e = 0; e < experts; ++e) {
      out.push_back(stored_in_layout(QuantFormat::kNVFP4, rows_, cols_,
                                     names_[static_cast<size_t>(e)],
                                     {{"weight", packed[e]},
                                      {"weight_scale", block_scales_[e]},
                                      {"weight_scale_2", scale2_[e]}}));
    }
    return out;
  }

 private:
  int64_t rows_ = 0, cols_ = 0;
  std::vector<std::string> names_;
  at::Tensor block_scales_;  // [E, R, C/16] uint8 (e4m3 bytes), as stored
  at::Tensor scale2_;        // [E] float32, weight_scale_2
  at::Tensor divisors_;      // [E, C/16, R] float32
  bool zero_divisor_ = false;
  at::Tensor boundaries_, values_;
  at::Tensor codes_;  // [E, C, R] uint8, 0..15
};

}  // namespace

std::unique_ptr<GptqColumnQuantizer> make_nvfp4_column_quantizer(
    const at::Tensor& w, const std::vector<float>& amax, const std::vector<std::string>& names) {
  return std::make_unique<Nvfp4ColumnQuantizer>(w, amax, names);
}

}  // namespace moequant
