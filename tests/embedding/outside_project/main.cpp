// A program outside the moequant tree: a GroupedLinear of 4 experts, its weights and inputs
// calibrated, its weights quantized to fp8 and checked. Prints "outside project: OK".
#include <ATen/ATen.h>

#include <cstdio>

#include "moequant/moequant.h"

int main() {
  using namespace moequant;
  GroupedLinearOptions o;
  o.num_gemms = 4;
  o.in_features = 64;
  o.out_features = 32;
  o.format = QuantFormat::kFP8;
  GroupedLinear experts(o);

  // Inputs: observed in the module's own forward while calibration mode is on.
  {
    CalibrationMode calibration(*experts);
    experts->forward(at::ones({8, 64}) * 3.0, {2, 2, 2, 2});
  }
  calibrate_weights(*experts);

  float expected = 0.0f;
  for (int64_t i = 0; i < o.num_gemms; ++i)
    expected = std::max(expected, experts->weight(i).abs().max().item<float>());
  const float amax = experts->weight_quantizer->amax_scalar();
  if (amax != expected || experts->input_quantizer->amax_scalar() != 3.0f) {
    std::fprintf(stderr, "outside project: amax %g (expected %g), input amax %g (expected 3)\n",
                 amax, expected, experts->input_quantizer->amax_scalar());
    return 1;
  }

  size_t quantized = 0;
  for (const QuantModuleRef& ref : find_quant_modules(*experts)) {
    for (const QuantizedWeight& w : quantize_module_weights(ref)) {
      const DType dtype = find_stored(w.tensors, "weight", w.name).dtype;
      const at::Tensor back = dequantize_weight(w.tensors, QuantFormat::kFP8, 32, 64, w.name);
      const double err = (back - experts->weight(quantized).detach()).abs().max().item<double>();
      if (dtype != DType::kF8E4M3 || err > amax / 8) {
        std::fprintf(stderr, "outside project: %s dtype %s, max error %g\n", w.name.c_str(),
                     dtype_name(dtype), err);
        return 1;
      }
      ++quantized;
    }
  }
  if (quantized != 4) {
    std::fprintf(stderr, "outside project: quantized %zu weights, expected 4\n", quantized);
    return 1;
  }
  std::printf("outside project: OK (4 experts, shared weight amax %g, fp8)\n", amax);
  return 0;
}
