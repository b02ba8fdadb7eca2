// Problems the GPTQ tests share (test_gptq.cpp on the CPU, test_gptq_gpu.cpp on CUDA), and
// helpers to read results back.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "moequant/core/format.h"
#include "moequant/core/quantize.h"

namespace moequant {
namespace gptq_test {

// E matrices w [E, R, C] with inputs x [E, n, C] = z (I + mixing * g / sqrt(C)) and their
// Hessians h = 2 x^T x (float32), as calibration would collect them.
struct Problem {
  at::Tensor w, x, h;
  std::vector<float> amax;
  std::vector<std::string> names;
};

inline Problem make_problem(int64_t experts, int64_t rows, int64_t cols, int64_t tokens,
                            double mixing, uint64_t seed) {
  at::manual_seed(seed);
  Problem p;
  p.w = at::randn({experts, rows, cols});
  const at::Tensor mix = at::eye(cols).unsqueeze(0) +
                         mixing * at::randn({experts, cols, cols}) / std::sqrt(double(cols));
  p.x = at::bmm(at::randn({experts, tokens, cols}), mix);
  p.h = 2 * at::bmm(p.x.transpose(1, 2), p.x);
  for (int64_t e = 0; e < experts; ++e) {
    p.amax.push_back(p.w[e].abs().max().item<float>());
    p.names.push_back("layers.0.mlp.experts." + std::to_string(e) + ".gate_proj.weight");
  }
  return p;
}

inline std::vector<double> doubles(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// The codes [R, C] a reader finds in the stored tensors, unpacked here independently.
inline std::vector<int> stored_codes(const std::vector<StoredTensor>& stored, QuantFormat f,
                                     int64_t rows, int64_t cols) {
  std::vector<int> codes(static_cast<size_t>(rows * cols));
  if (f == QuantFormat::kINT4) {
    const at::Tensor qw = find_stored(stored, "qweight", "t").data.cpu().contiguous();  // [C/8, R]
    const int32_t* p = qw.data_ptr<int32_t>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        codes[r * cols + c] = (static_cast<uint32_t>(p[(c / 8) * rows + r]) >> (4 * (c % 8))) & 15;
  } else {
    const at::Tensor wq = find_stored(stored, "weight", "t").data.cpu().contiguous();  // [R, C/2]
    const uint8_t* p = wq.data_ptr<uint8_t>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        codes[r * cols + c] = (p[r * (cols / 2) + c / 2] >> (4 * (c % 2))) & 15;
  }
  return codes;
}

// Weights whose rounding meets every rule's corner: ties, zero groups and blocks, an fp16 scale
// that underflows to zero, an e4m3 block scale rounded down (saturation), -0.0 and small
// negatives. Matrix 0 of [2, 16, 256]; nvfp4's amax 2688 makes weight_scale_2 exactly 1.
inline at::Tensor corner_case_weights() {
  at::manual_seed(22);
  at::Tensor w = at::randn({2, 16, 256});
  // int4, group 0 of row 0: amax 7 gives scale 1, so these are the quotients themselves
  const std::vector<float> int4_row = {7.0f, 2.5f,  3.5f, -0.5f, -2.5f,
                                       6.5f, -6.5f, 0.5f, -0.0f, -7.0f};
  w[0][0].narrow(0, 0, 128).uniform_(-6.9, 6.9);
  for (size_t i = 0; i < int4_row.size(); ++i) w[0][0][static_cast<int64_t>(i)] = int4_row[i];
  w[0][1].narrow(0, 0, 128).zero_();    // a zero group: scale 1.0
  w[0][2].narrow(0, 128, 128).zero_();  // a group whose scale underflows:
  w[0][2][130] = 1e-8f;                 // 1e-8 / 7 is fp16 zero
  // nvfp4, block 0 of row 3: block amax 6 gives block scale 1, so y = w
  const std::vector<float> nvfp4_block = {6.0f,   0.25f, 0.75f, 1.25f, 1.75f, 2.5f,  3.5f, 5.0f,
                                          -0.25f, -0.0f, -6.0f, 5.5f,  0.1f,  -1.0f, 3.0f, 4.0f};
  for (size_t i = 0; i < nvfp4_block.size(); ++i) w[0][3][static_cast<int64_t>(i)] = nvfp4_block[i];
  w[0][4].narrow(0, 16, 16).zero_();                // a zero block: scale 1.0
  w[0][5].narrow(0, 32, 16).uniform_(-1e-6, 1e-6);  // a tiny block: scale clamped to 2^-9
  w[0][6].narrow(0, 48, 16).uniform_(-6.0, 6.0);    // 6.375 / 6 = 1.0625 is an e4m3 tie: the
  w[0][6][50] = 6.375f;                             // scale rounds to 1 and 6.375 saturates
  return w;
}

}  // namespace gptq_test
}  // namespace moequant
