// Small modules shared by the modules and calibration tests.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "moequant/modules/grouped_linear.h"
#include "moequant/modules/linear.h"

namespace moequant::test {

inline GroupedLinearOptions grouped(int64_t n, int64_t in, int64_t out, bool bias = false) {
  GroupedLinearOptions o;
  o.num_gemms = n;
  o.in_features = in;
  o.out_features = out;
  o.bias = bias;
  o.format = QuantFormat::kFP8;
  return o;
}

inline float max_abs(const at::Tensor& t) {
  return t.abs().max().to(at::kFloat).item<float>();
}

// A small model: a grouped-linear expert pair, a router and a dense layer.
struct TinyMoE : torch::nn::Module {
  TinyMoE() {
    fc1 = register_module("fc1", GroupedLinear(grouped(4, 16, 32)));
    fc2 = register_module("fc2", GroupedLinear(grouped(4, 32, 16)));
    LinearOptions r;
    r.in_features = 16;
    r.out_features = 4;
    r.format = QuantFormat::kFP8;
    router = register_module("router", Linear(r));
  }
  GroupedLinear fc1{nullptr}, fc2{nullptr};
  Linear router{nullptr};
};

}  // namespace moequant::test
