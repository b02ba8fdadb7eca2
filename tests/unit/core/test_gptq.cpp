// GPTQ (core/gptq.h) against an independent double-precision reference written from the paper
// (gptq_reference.h), against round-to-nearest, against the format's own dequantizer, batched
// against one matrix at a time, and its Hessians against double sums; plus its named errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "gptq_problems.h"
#include "gptq_reference.h"
#include "moequant/common/error.h"
#include "moequant/core/gptq.h"
#include "moequant/core/quantize.h"

namespace moequant {
namespace {

namespace ref = gptq_reference;
using gptq_test::corner_case_weights;
using gptq_test::doubles;
using gptq_test::make_problem;
using gptq_test::Problem;
using gptq_test::stored_codes;

ref::Format ref_format(QuantFormat f) {
  return f == QuantFormat::kINT4 ? ref::Format::kInt4 : ref::Format::kNvfp4;
}

// How closely GPTQ follows the reference on every matrix of `p`.
struct Agreement {
  int64_t codes = 0, equal = 0;
  double worst_objective_rel = 0;  // max over matrices of |ours - ref| / ref
};

Agreement compare_with_reference(const Problem& p, QuantFormat f, double damp = 0.01) {
  const int64_t experts = p.w.size(0), rows = p.w.size(1), cols = p.w.size(2);
  const GptqResult res = gptq_quantize(p.w, p.h, f, p.amax, p.names, {damp});
  Agreement a;
  for (int64_t e = 0; e < experts; ++e) {
    const std::vector<double> w = doubles(p.w[e]), h = doubles(p.h[e]);
    const ref::Result r = ref::gptq(w, h, rows, cols, ref_format(f), p.amax[e], damp);
    EXPECT_TRUE(r.ok) << p.names[e];
    const std::vector<int> ours = stored_codes(res.stored[e], f, rows, cols);
    for (size_t i = 0; i < ours.size(); ++i) a.equal += ours[i] == r.codes[i];
    a.codes += static_cast<int64_t>(ours.size());
    const double mine = ref::objective(w, doubles(res.dequantized[e]), h, rows, cols);
    const double theirs = ref::objective(w, r.q, h, rows, cols);
    a.worst_objective_rel = std::max(a.worst_objective_rel, std::fabs(mine - theirs) / theirs);
  }
  return a;
}

struct Shape {
  int64_t rows, cols;
};

TEST(GptqReference, WellConditionedCodesEqualTheReference) {
  // More tokens than columns and a mild mixing: H is well conditioned.
  struct Case {
    QuantFormat f;
    Shape s;
  };
  for (const Case& c :
       {Case{QuantFormat::kINT4, {64, 256}}, Case{QuantFormat::kINT4, {40, 200}},
        Case{QuantFormat::kINT4, {16, 392}}, Case{QuantFormat::kNVFP4, {64, 256}},
        Case{QuantFormat::kNVFP4, {40, 208}}, Case{QuantFormat::kNVFP4, {24, 144}}}) {
    const Problem p = make_problem(3, c.s.rows, c.s.cols, 4 * c.s.cols, 0.3, 11);
    const Agreement a = compare_with_reference(p, c.f);
    std::printf(
        "[gptq] well-conditioned %s [%ld, %ld] x3: %ld / %ld codes equal, objective "
        "rel diff %.2e\n",
        format_name(c.f), static_cast<long>(c.s.rows), static_cast<long>(c.s.cols),
        static_cast<long>(a.equal), static_cast<long>(a.codes), a.worst_objective_rel);
    EXPECT_EQ(a.equal, a.codes) << format_name(c.f) << " [" << c.s.rows << ", " << c.s.cols << "]";
    EXPECT_LT(a.worst_objective_rel, 1e-6);
  }
}

TEST(GptqReference, HardCaseAgreesClosely) {
  // Fewer tokens than columns (a rank-deficient H, made definite only by the damping), strongly
  // mixed inputs, and dead columns (inputs that are always zero).
  for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
    for (Shape s : {Shape{64, 256}, Shape{40, 208}}) {
      Problem p = make_problem(3, s.rows, s.cols, s.cols / 2, 2.0, 12);
      for (int64_t dead : {3, 17, 130}) p.x.select(2, dead).zero_();
      p.h = 2 * at::bmm(p.x.transpose(1, 2), p.x);
      const Agreement a = compare_with_reference(p, f);
      const double fraction = double(a.equal) / double(a.codes);
      std::printf("[gptq] hard %s [%ld, %ld] x3: %.5f of codes equal, objective rel diff %.2e\n",
                  format_name(f), static_cast<long>(s.rows), static_cast<long>(s.cols), fraction,
                  a.worst_objective_rel);
      EXPECT_GE(fraction, 0.999) << format_name(f);
      EXPECT_LT(a.worst_objective_rel, 1e-4) << format_name(f);
    }
  }
}

TEST(GptqVsRoundToNearest, GptqHasTheSmallerOutputError) {
  // X = Z A with a random mixing A: X^T X is far from diagonal, where error feedback pays.
  for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
    const Problem p = make_problem(16, 64, 256, 512, 3.0, 13);
    const GptqResult res = gptq_quantize(p.w, p.h, f, p.amax, p.names);
    double sum_gptq = 0, sum_rtn = 0, best = 1e9, worst = 0;
    for (int64_t e = 0; e < 16; ++e) {
      const at::Tensor rtn = dequantize_weight(quantize_weight(p.w[e], f, {p.amax[e]}, p.names[e]),
                                               f, 64, 256, p.names[e]);
      const at::Tensor x = p.x[e].to(at::kDouble), w = p.w[e].to(at::kDouble);
      const double err_gptq =
          at::matmul(x, (w - res.dequantized[e].to(at::kDouble)).t()).norm().item<double>();
      const double err_rtn = at::matmul(x, (w - rtn.to(at::kDouble)).t()).norm().item<double>();
      sum_gptq += err_gptq;
      sum_rtn += err_rtn;
      best = std::min(best, err_gptq / err_rtn);
      worst = std::max(worst, err_gptq / err_rtn);
      if (err_gptq > err_rtn)
        std::printf("[gptq] %s matrix %ld: GPTQ's error %.4g above RTN's %.4g\n", format_name(f),
                    static_cast<long>(e), err_gptq, err_rtn);
      EXPECT_LT(err_gptq, 1.03 * err_rtn) << format_name(f) << " matrix " << e;
    }
    std::printf(
        "[gptq] %s ||X W^T - X Q^T||: GPTQ / RTN summed over 16 = %.4f (per matrix %.4f "
        ".. %.4f)\n",
        format_name(f), sum_gptq / sum_rtn, best, worst);
    EXPECT_LT(sum_gptq, sum_rtn) << format_name(f);
  }
}

TEST(GptqStored, WithAnIdentityHessianGptqIsRoundToNearest) {
  // H = I: U is diagonal, no error reaches another column, so GPTQ must store exactly what
  // round-to-nearest (the format's kernels) stores, corner cases included.
  const at::Tensor w = corner_case_weights();
  const at::Tensor h = at::eye(256).unsqueeze(0).repeat({2, 1, 1});
  const std::vector<float> amax = {2688.0f, w[1].abs().max().item<float>()};
  const std::vector<std::string> names = {"m.0", "m.1"};
  for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
    const GptqResult res = gptq_quantize(w, h, f, amax, names);
    for (int64_t e = 0; e < 2; ++e) {
      const std::vector<StoredTensor> rtn = quantize_weight(w[e], f, {amax[e]}, names[e]);
      for (size_t i = 0; i < rtn.size(); ++i)
        EXPECT_TRUE(at::equal(res.stored[e][i].data, rtn[i].data))
            << format_name(f) << " matrix " << e << " " << rtn[i].suffix;
      EXPECT_TRUE(at::equal(res.dequantized[e], dequantize_weight(rtn, f, 16, 256, names[e])));
    }
  }
}

TEST(GptqStored, DequantizesExactlyToTheSolversMatrices) {
  for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
    const Problem p = make_problem(3, 40, 208, 300, 1.0, 14);
    const GptqResult res = gptq_quantize(p.w, p.h, f, p.amax, p.names);
    ASSERT_EQ(res.stored.size(), 3u);
    ASSERT_EQ(res.dequantized.sizes(), (at::IntArrayRef{3, 40, 208}));
    for (int64_t e = 0; e < 3; ++e) {
      const std::vector<StoredTensor>& s = res.stored[e];
      // the layout's tensors, in its order, as quantize_weight returns them
      const std::vector<StoredTensor> rtn = quantize_weight(p.w[e], f, {p.amax[e]}, p.names[e]);
      ASSERT_EQ(s.size(), rtn.size());
      for (size_t i = 0; i < s.size(); ++i) {
        EXPECT_EQ(s[i].suffix, rtn[i].suffix);
        EXPECT_EQ(s[i].dtype, rtn[i].dtype);
        EXPECT_EQ(s[i].shape, rtn[i].shape);
        EXPECT_EQ(s[i].data.scalar_type(), rtn[i].data.scalar_type());
        EXPECT_EQ(s[i].data.sizes(), rtn[i].data.sizes());
      }
      const at::Tensor back = dequantize_weight(s, f, 40, 208, p.names[e]);
      EXPECT_TRUE(at::equal(back, res.dequantized[e])) << format_name(f) << " matrix " << e;
      if (f == QuantFormat::kNVFP4) {  // the scales are fixed before the sweep: RTN's bytes
        EXPECT_TRUE(at::equal(s[1].data, rtn[1].data));
        EXPECT_TRUE(at::equal(s[2].data, rtn[2].data));
      } else {
        EXPECT_TRUE(at::equal(s[1].data, rtn[1].data));  // qzeros
        EXPECT_TRUE(at::equal(s[3].data, rtn[3].data));  // g_idx
      }
    }
  }
}

TEST(GptqBatched, EqualsOneMatrixAtATime) {
  for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
    const Problem p = make_problem(4, 24, 272, 400, 1.0, 15);
    const GptqResult all = gptq_quantize(p.w, p.h, f, p.amax, p.names, {0.01, 64});
    for (int64_t e = 0; e < 4; ++e) {
      const GptqResult one = gptq_quantize(p.w.narrow(0, e, 1), p.h.narrow(0, e, 1), f, {p.amax[e]},
                                           {p.names[e]}, {0.01, 64});
      EXPECT_TRUE(at::equal(one.dequantized[0], all.dequantized[e])) << format_name(f) << e;
      for (size_t i = 0; i < one.stored[0].size(); ++i)
        EXPECT_TRUE(at::equal(one.stored[0][i].data, all.stored[e][i].data))
            << format_name(f) << " matrix " << e << " " << one.stored[0][i].suffix;
    }
  }
}

TEST(GptqBatched, LazyBlockSizeChangesOnlyTheSummationOrder) {
  const Problem p = make_problem(2, 32, 256, 600, 0.5, 16);
  for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
    const GptqResult a = gptq_quantize(p.w, p.h, f, p.amax, p.names, {0.01, 128});
    for (int64_t block : {1, 48, 256}) {
      const GptqResult b = gptq_quantize(p.w, p.h, f, p.amax, p.names, {0.01, block});
      const double same = a.dequantized.eq(b.dequantized).to(at::kDouble).mean().item<double>();
      EXPECT_GE(same, 0.999) << format_name(f) << " block " << block;
    }
  }
}

TEST(GptqInputs, DeadColumnsAreZeroed) {
  for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
    Problem p = make_problem(2, 16, 128, 300, 1.0, 17);
    const std::vector<int64_t> dead = {0, 5, 77};
    for (int64_t d : dead) p.x.select(2, d).zero_();
    p.h = 2 * at::bmm(p.x.transpose(1, 2), p.x);
    const GptqResult res = gptq_quantize(p.w, p.h, f, p.amax, p.names);
    for (int64_t d : dead) EXPECT_TRUE(at::equal(res.dequantized.select(2, d), at::zeros({2, 16})));
    // the same as zeroing those weights and putting 1 on the Hessian's diagonal by hand (nvfp4's
    // block scales still come from the weights as given, so only int4 compares whole)
    if (f == QuantFormat::kINT4) {
      at::Tensor w = p.w.clone(), h = p.h.clone();
      for (int64_t d : dead) {
        w.select(2, d).zero_();
        h.select(1, d).select(1, d).fill_(1.0f);
      }
      const GptqResult by_hand = gptq_quantize(w, h, f, p.amax, p.names);
      EXPECT_TRUE(at::equal(by_hand.dequantized, res.dequantized));
    }
  }
}

TEST(GptqInputs, SixteenBitWeightsAreWidenedExactly) {
  const Problem p = make_problem(2, 16, 128, 300, 1.0, 23);
  for (at::ScalarType t : {at::kBFloat16, at::kHalf}) {
    const at::Tensor w16 = p.w.to(t);
    for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
      const GptqResult a = gptq_quantize(w16, p.h, f, p.amax, p.names);
      const GptqResult b = gptq_quantize(w16.to(at::kFloat), p.h, f, p.amax, p.names);
      EXPECT_TRUE(at::equal(a.dequantized, b.dequantized)) << format_name(f) << " " << t;
      for (size_t i = 0; i < a.stored[1].size(); ++i)
        EXPECT_TRUE(at::equal(a.stored[1][i].data, b.stored[1][i].data)) << format_name(f);
    }
  }
}

TEST(GptqInputs, DampingIsAFractionOfTheMeanDiagonal) {
  // damping d == damping 0 of H + d * mean(diag H) * I
  const Problem p = make_problem(2, 16, 128, 300, 1.0, 18);
  at::Tensor damped = p.h.clone();
  const at::Tensor mean = damped.diagonal(0, 1, 2).to(at::kDouble).mean(1);
  damped.diagonal(0, 1, 2).add_((0.05 * mean).to(at::kFloat).unsqueeze(1));
  for (QuantFormat f : {QuantFormat::kINT4, QuantFormat::kNVFP4}) {
    const GptqResult a = gptq_quantize(p.w, p.h, f, p.amax, p.names, {0.05});
    const GptqResult b = gptq_quantize(p.w, damped, f, p.amax, p.names, {0.0});
    EXPECT_TRUE(at::equal(a.dequantized, b.dequantized)) << format_name(f);
    const GptqResult c = gptq_quantize(p.w, p.h, f, p.amax, p.names, {0.01});
    EXPECT_FALSE(at::equal(a.dequantized, c.dequantized)) << format_name(f);
  }
}

void expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing " << needles.front();
  } catch (const Error& e) {
    for (const std::string& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TEST(GptqInputs, BadInputsAreNamedErrors) {
  const Problem p = make_problem(3, 16, 128, 64, 1.0, 19);
  const QuantFormat i4 = QuantFormat::kINT4, nv = QuantFormat::kNVFP4;
  {
    at::Tensor w = p.w.clone();
    w[1][3][7] = NAN;
    expect_error([&] { gptq_quantize(w, p.h, i4, {}, p.names); }, {p.names[1], "NaN"});
  }
  {
    at::Tensor h = p.h.clone();
    h[2][0][9] = INFINITY;
    expect_error([&] { gptq_quantize(p.w, h, nv, p.amax, p.names); }, {p.names[2], "Hessian"});
  }
  {
    // H = all ones (rank 1, every diagonal 1) has a zero Cholesky pivot: an error without damping,
    // none with the default damping. A negative diagonal fails even after damping.
    const at::Tensor ones = at::ones({3, 128, 128});
    expect_error([&] { gptq_quantize(p.w, ones, i4, {}, p.names, {0.0}); },
                 {p.names[0], "--gptq-damp"});
    EXPECT_NO_THROW(gptq_quantize(p.w, ones, i4, {}, p.names));
    at::Tensor h = p.h.clone();
    h[1][4][4] = -1.0f;
    expect_error([&] { gptq_quantize(p.w, h, i4, {}, p.names); }, {p.names[1], "--gptq-damp"});
  }
  const at::Tensor w12 = at::randn({1, 12, 128}), h128 = at::eye(128).unsqueeze(0);
  expect_error([&] { gptq_quantize(w12, h128, i4, {}, {"m.w12"}); }, {"m.w12", "out % 8"});
  const at::Tensor w200 = at::randn({1, 16, 200}), h200 = at::eye(200).unsqueeze(0);
  expect_error([&] { gptq_quantize(w200, h200, nv, {1.0f}, {"m.w200"}); }, {"m.w200", "in % 16"});
  expect_error([&] { gptq_quantize(p.w, p.h.narrow(1, 0, 64), i4, {}, p.names); },
               {p.names[0], "Hessians"});
  expect_error([&] { gptq_quantize(p.w, p.h, nv, {1.0f}, p.names); }, {p.names[0], "amax"});
  expect_error([&] { gptq_quantize(p.w, p.h, QuantFormat::kFP8, {}, p.names); },
               {p.names[0], "int4 or nvfp4"});
  expect_error([&] { gptq_quantize(p.w, p.h, i4, {}, {"only.one"}); }, {"names"});
}

TEST(GptqHessian, AccumulatesTwiceXtXInFloat32ChunkedOrNot) {
  at::manual_seed(20);
  const at::Tensor x = at::randn({333, 48}) * 3 + 1;
  const at::Tensor want = 2 * at::matmul(x.to(at::kDouble).t(), x.to(at::kDouble));
  for (int64_t chunk : {0, 1, 7, 333, 1000}) {
    for (at::ScalarType t : {at::kFloat, at::kBFloat16}) {
      const at::Tensor xt = x.to(t);
      const at::Tensor want_t = 2 * at::matmul(xt.to(at::kDouble).t(), xt.to(at::kDouble));
      at::Tensor h = at::zeros({48, 48});
      accumulate_hessian(h, xt.narrow(0, 0, 100), "h", chunk);
      accumulate_hessian(h, xt.narrow(0, 100, 233), "h", chunk);
      const double rel =
          ((h.to(at::kDouble) - want_t).abs().max() / want_t.abs().max()).item<double>();
      EXPECT_LT(rel, 1e-5) << "chunk " << chunk << " " << t;
    }
  }
  at::Tensor h = at::zeros({48, 48});
  expect_error(
      [&] {
        accumulate_hessian(h, at::randn({4, 40}), "layers.1.w2");
      },
      {"layers.1.w2", "40"});
  expect_error(
      [&] {
        accumulate_hessian(h, at::randn({4, 48}).to(at::kInt), "layers.1.w2");
      },
      {"layers.1.w2"});
}

TEST(GptqHessian, ExpertHessiansFromGroupedRowsKeepTokenCounts) {
  at::manual_seed(21);
  const std::vector<int64_t> counts = {5, 0, 17, 1};
  const at::Tensor x = at::randn({23, 32});
  ExpertHessians grouped = make_expert_hessians(4, 32, at::kCPU, "layers.2.experts.w1");
  accumulate_expert_hessians(grouped, x, counts, /*chunk_rows=*/4);
  accumulate_expert_hessians(grouped, x, counts);
  EXPECT_EQ(grouped.tokens, (std::vector<int64_t>{10, 0, 34, 2}));
  int64_t offset = 0;
  for (int64_t e = 0; e < 4; ++e) {
    const at::Tensor xe = x.narrow(0, offset, counts[e]).to(at::kDouble);
    const at::Tensor want = 4 * at::matmul(xe.t(), xe);  // added twice
    offset += counts[e];
    EXPECT_LT((grouped.h[e].to(at::kDouble) - want).abs().max().item<double>(), 1e-4) << e;
  }
  ExpertHessians one = make_expert_hessians(4, 32, at::kCPU, "layers.2.experts.w1");
  accumulate_expert_hessian(one, 2, x.narrow(0, 5, 17));
  EXPECT_EQ(one.tokens, (std::vector<int64_t>{0, 0, 17, 0}));
  expect_error(
      [&] {
        accumulate_expert_hessians(one, x, {5, 0, 17});
      },
      {"layers.2.experts.w1", "3 row counts"});
  expect_error(
      [&] {
        accumulate_expert_hessians(one, x, {5, 0, 17, 2});
      },
      {"layers.2.experts.w1", "sum to 24"});
  expect_error([&] { accumulate_expert_hessian(one, 4, x); }, {"layers.2.experts.w1", "expert 4"});
}

}  // namespace
}  // namespace moequant
