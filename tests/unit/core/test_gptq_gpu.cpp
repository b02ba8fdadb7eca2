// GPTQ on a CUDA device (skipped without one): its rounding equals the CUDA kernels' byte for
// byte (identity Hessian), its codes agree with the CPU run's where only the factorizations and
// the lazy matmul sum in another order, its stored tensors dequantize on the device exactly to
// its Q; and how long it takes on expert shapes of a real MoE.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <functional>

#include "gptq_problems.h"
#include "gptq_reference.h"
#include "moequant/core/gptq.h"
#include "moequant/core/quantize.h"
#include "moequant/kernels/kernels.h"

namespace moequant {
namespace {

using gptq_test::corner_case_weights;
using gptq_test::doubles;
using gptq_test::make_problem;
using gptq_test::Problem;
using gptq_test::stored_codes;

const at::Device kCuda("cuda");

class GptqGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!mq_cuda_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(GptqGpu, IdentityHessianStoresTheCudaKernelsBytes) {
  const at::Tensor w = corner_case_weights().to(kCuda);
  const at::Tensor h = at::eye(256).unsqueeze(0).repeat({2, 1, 1}).to(kCuda);
  const std::vector<float> amax = {2688.0f, w[1].abs().max().item<float>()};
  const std::vector<std::string> names = {"m.0", "m.1"};
  for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
    const GptqResult res = gptq_quantize(w, h, f, amax, names);
    for (int64_t e = 0; e < 2; ++e) {
      const std::vector<StoredTensor> rtn = quantize_weight(w[e], f, {amax[e]}, names[e]);
      for (size_t i = 0; i < rtn.size(); ++i) {
        EXPECT_TRUE(res.stored[e][i].data.is_cuda());
        EXPECT_TRUE(at::equal(res.stored[e][i].data, rtn[i].data))
            << format_name(f) << " matrix " << e << " " << rtn[i].suffix;
      }
    }
  }
}

TEST_F(GptqGpu, CudaAgreesWithTheCpu) {
  // Where a near-tie is decided differently (the factorizations and the lazy matmul sum in
  // another order), the rest of that row follows another, equally good path: a rank-deficient
  // Hessian, which amplifies the differences, is held to a looser bound.
  struct Case {
    const char* what;
    int64_t tokens;
    double mixing, min_equal, max_objective_rel;
  };
  for (const Case& c : {Case{"well-conditioned", 1536, 0.3, 0.999, 1e-4},
                        Case{"rank-deficient", 192, 2.0, 0.99, 1e-2}}) {
    const Problem p = make_problem(4, 64, 384, c.tokens, c.mixing, 31);
    for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
      const GptqResult cpu = gptq_quantize(p.w, p.h, f, p.amax, p.names);
      const GptqResult gpu = gptq_quantize(p.w.to(kCuda), p.h.to(kCuda), f, p.amax, p.names);
      int64_t equal = 0, total = 0;
      double worst = 0;
      for (int64_t e = 0; e < 4; ++e) {
        const std::vector<int> a = stored_codes(cpu.stored[e], f, 64, 384);
        const std::vector<int> b = stored_codes(gpu.stored[e], f, 64, 384);
        for (size_t i = 0; i < a.size(); ++i) equal += a[i] == b[i];
        total += static_cast<int64_t>(a.size());
        const std::vector<double> w = doubles(p.w[e]), h = doubles(p.h[e]);
        const double oc = gptq_reference::objective(w, doubles(cpu.dequantized[e]), h, 64, 384);
        const double og =
            gptq_reference::objective(w, doubles(gpu.dequantized[e].cpu()), h, 64, 384);
        worst = std::max(worst, std::fabs(og - oc) / oc);
        const at::Tensor back = dequantize_weight(gpu.stored[e], f, 64, 384, p.names[e]);
        EXPECT_TRUE(back.is_cuda());
        EXPECT_TRUE(at::equal(back, gpu.dequantized[e])) << format_name(f) << " matrix " << e;
      }
      std::printf(
          "[gptq-gpu] %s %s [4 x 64 x 384]: %ld / %ld codes equal CPU's, objective rel "
          "diff %.2e\n",
          c.what, format_name(f), static_cast<long>(equal), static_cast<long>(total), worst);
      EXPECT_GE(double(equal) / double(total), c.min_equal) << c.what << " " << format_name(f);
      EXPECT_LT(worst, c.max_objective_rel) << c.what << " " << format_name(f);
    }
  }
}

double seconds_of(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST_F(GptqGpu, TimingOnQwen3MoeExpertShapes) {
  // Qwen3-30B-A3B: hidden 2048, expert intermediate 768; 32 experts per call, 4096 tokens each.
  struct Shape {
    const char* proj;
    int64_t rows, cols;
  };
  const int64_t experts = 32, tokens = 4096;
  for (const Shape& s : {Shape{"gate/up", 768, 2048}, Shape{"down", 2048, 768}}) {
    at::manual_seed(32);
    const at::Tensor w = (at::randn({experts, s.rows, s.cols}, kCuda) * 0.02).to(at::kBFloat16);
    const at::Tensor x = at::randn({experts * tokens, s.cols}, kCuda).to(at::kBFloat16);
    ExpertHessians hs = make_expert_hessians(experts, s.cols, kCuda, s.proj);
    const std::vector<int64_t> rows(static_cast<size_t>(experts), tokens);
    accumulate_expert_hessians(hs, x, rows);  // warm-up
    hs.h.zero_();
    const double t_hessian = seconds_of([&] {
      accumulate_expert_hessians(hs, x, rows);
      hs.h.sum().item<float>();
    });
    std::vector<std::string> names;
    std::vector<float> amax;
    for (int64_t e = 0; e < experts; ++e) {
      names.push_back(std::string(s.proj) + "." + std::to_string(e));
      amax.push_back(w[e].abs().max().to(at::kFloat).item<float>());
    }
    for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
      gptq_quantize(w.narrow(0, 0, 2), hs.h.narrow(0, 0, 2), f, {amax[0], amax[1]},
                    {names[0], names[1]});  // warm-up
      GptqResult res;
      const double t = seconds_of([&] {
        res = gptq_quantize(w, hs.h, f, amax, names);
        res.dequantized.sum().item<float>();
      });
      std::printf(
          "[gptq-gpu] %s [%ld x %ld x %ld] %s: GPTQ %.3f s for %ld experts (%.1f ms each); "
          "Hessians of %ld tokens each %.3f s\n",
          s.proj, static_cast<long>(experts), static_cast<long>(s.rows), static_cast<long>(s.cols),
          format_name(f), t, static_cast<long>(experts), 1e3 * t / double(experts),
          static_cast<long>(tokens), t_hessian);
    }
  }
}

}  // namespace
}  // namespace moequant
