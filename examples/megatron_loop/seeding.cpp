#include "seeding.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "moequant/common/error.h"

namespace loop {

uint64_t mix_seed(uint64_t seed, uint64_t stream, uint64_t index) {
  // splitmix64 of the three, so nearby inputs give unrelated streams.
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + stream * 0xBF58476D1CE4E5B9ull + index + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

at::Tensor batch_slice(uint64_t seed, uint64_t stream, uint64_t index, int64_t tokens,
                       int64_t hidden, int dp_rank, int dp_size, const at::Device& device) {
  MQ_CHECK(tokens % dp_size == 0, "--tokens ", tokens, " is not divisible by the ", dp_size,
           " data-parallel ranks");
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(seed, stream, index));
  const at::Tensor global = at::randn({tokens, hidden}, gen, at::TensorOptions(at::kFloat));
  const int64_t n = tokens / dp_size;
  return global.narrow(0, dp_rank * n, n).contiguous().to(device);
}

Teacher::Teacher(uint64_t seed, int64_t hidden, const at::Device& device) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(seed, 4, 0));
  t_ = (at::randn({hidden, hidden}, gen, at::TensorOptions(at::kFloat)) / std::sqrt(double(hidden)))
           .to(device);
}

at::Tensor Teacher::operator()(const at::Tensor& x) const {
  return x + 0.5 * at::tanh(x.mm(t_));
}

}  // namespace loop
