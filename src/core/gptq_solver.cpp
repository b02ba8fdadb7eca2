// GPTQ's solver (docs/design.md, "GPTQ"): dead columns, damping, the upper Cholesky factor of
// H^-1, then the column sweep in lazy blocks, for the E matrices of one call at once, with batched
// ATen ops on the tensors' device.
//
// CPU and CUDA run the same element-wise steps, which round alike (no fused multiply-adds: every
// product is its own op). They can differ where a sum's order is the library's: the Cholesky
// factorizations and the lazy block update's matmul; a code can then differ where a value lies
// within a few ulps of a rounding boundary.
#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "gptq_quantizer.h"
#include "moequant/common/error.h"
#include "moequant/core/gptq.h"

namespace moequant {

namespace {

void check_inputs(const at::Tensor& w, const at::Tensor& h, QuantFormat format,
                  const std::vector<float>& amax, const std::vector<std::string>& names,
                  const GptqOptions& options) {
  MQ_CHECK(w.defined() && w.dim() == 3, "GPTQ: weights must be [E, R, C]");
  const int64_t experts = w.size(0), rows = w.size(1), cols = w.size(2);
  MQ_CHECK(experts > 0 && static_cast<int64_t>(names.size()) == experts, "GPTQ: ", names.size(),
           " names for ", experts, " matrices");
  const std::string& first = names.front();
  MQ_CHECK(format == QuantFormat::kINT4 || format == QuantFormat::kNVFP4, first,
           ": GPTQ quantizes to int4 or nvfp4, not ", format_name(format));
  MQ_CHECK(w.scalar_type() == at::kFloat || w.scalar_type() == at::kBFloat16 ||
               w.scalar_type() == at::kHalf,
           first, ": GPTQ weights must be bf16, fp16 or fp32, got ", w.scalar_type());
  MQ_CHECK(
      h.defined() && h.dim() == 3 && h.size(0) == experts && h.size(1) == cols && h.size(2) == cols,
      first, ": GPTQ needs Hessians [", experts, ", ", cols, ", ", cols, "], got ",
      h.defined() ? h.sizes() : at::IntArrayRef{});
  MQ_CHECK(h.scalar_type() == at::kFloat, first, ": GPTQ Hessians must be float32, got ",
           h.scalar_type());
  MQ_CHECK(h.device() == w.device(), first, ": weights on ", w.device(), ", Hessians on ",
           h.device());
  MQ_CHECK(std::isfinite(options.damp) && options.damp >= 0, first,
           ": GPTQ damping must be a finite fraction >= 0, got ", options.damp);
  MQ_CHECK(options.block > 0, first, ": GPTQ block must be positive, got ", options.block);
  // The format's shape rules (int4: R % 8, C % 8; nvfp4: C % 16), named by the layout.
  format_descriptor(format).stored_tensors(rows, cols, DType::kF32, first);
  if (format == QuantFormat::kNVFP4) {
    MQ_CHECK(static_cast<int64_t>(amax.size()) == experts, first,
             ": nvfp4 GPTQ needs one amax "
             "per matrix, got ",
             amax.size(), " for ", experts);
    for (size_t e = 0; e < amax.size(); ++e)
      MQ_CHECK(std::isfinite(amax[e]) && amax[e] >= 0, names[e], ": amax ", amax[e],
               " is not a finite value >= 0");
  }
  const int64_t bad_w = first_failing(at::isfinite(w).flatten(1).all(1));
  MQ_CHECK(bad_w < 0, names[static_cast<size_t>(std::max<int64_t>(bad_w, 0))],
           ": weight has NaN or Inf");
  const int64_t bad_h = first_failing(at::isfinite(h).flatten(1).all(1));
  MQ_CHECK(bad_h < 0, names[static_cast<size_t>(std::max<int64_t>(bad_h, 0))],
           ": GPTQ Hessian has NaN or Inf");
}

// `ok` [E] bool: the factorization of each matrix succeeded.
void check_cholesky(const at::Tensor& ok, double damp, const std::vector<std::string>& names) {
  const int64_t bad = first_failing(ok);
  MQ_CHECK(bad < 0, names[static_cast<size_t>(std::max<int64_t>(bad, 0))],
           ": the GPTQ Hessian is not positive definite even after damping by ", damp,
           " of its mean diagonal (Cholesky failed); raise --gptq-damp");
}

// U [E, C, C] upper triangular with U^T U = H^-1, H = h with its dead columns (zero diagonal)
// set to 1 and damp * mean(diag) added to its diagonal. The dead columns of wt [E, C, R] are
// zeroed: no input reaches them, so any value is as good, and zero costs nothing.
at::Tensor inverse_hessian_factor(const at::Tensor& h, at::Tensor& wt, double damp,
                                  const std::vector<std::string>& names) {
  at::Tensor u;
  {
    at::Tensor hw = h.clone();
    at::Tensor diag = hw.diagonal(0, 1, 2);  // a view: writes go to hw
    const at::Tensor dead = diag == 0;
    diag.masked_fill_(dead, 1.0);
    wt.masked_fill_(dead.unsqueeze(2), 0.0);
    // The mean in double: one value per matrix, whatever the batch's size or the device.
    const at::Tensor mean = diag.to(at::kDouble).mean(1);
    diag.add_((mean * damp).to(at::kFloat).unsqueeze(1));
    at::Tensor l, info;
    std::tie(l, info) = at::linalg_cholesky_ex(hw);
    check_cholesky(info == 0, damp, names);
    hw = at::Tensor();
    const at::Tensor hinv = at::cholesky_inverse(l);
    l = at::Tensor();
    std::tie(u, info) = at::linalg_cholesky_ex(hinv, /*upper=*/true);
    check_cholesky(info == 0, damp, names);
  }
  check_cholesky(at::isfinite(u).flatten(1).all(1), damp, names);
  return u;
}

// The sweep over columns of wt [E, C, R] (Algorithm 1 of the paper with lazy batches): each
// column is quantized, its error divided by U's diagonal is spread over the block's later
// columns at once and over the columns right of the block by one matmul per block. On return wt
// holds the dequantized weights. Returns [E] bool: the errors stayed finite.
at::Tensor sweep(at::Tensor& wt, const at::Tensor& u, GptqColumnQuantizer& quantizer,
                 int64_t block) {
  const int64_t experts = wt.size(0), cols = wt.size(1), rows = wt.size(2);
  const int64_t group = quantizer.group_size();
  at::Tensor finite = at::ones({experts}, wt.options().dtype(at::kBool));
  int64_t i2 = 0;
  for (int64_t i1 = 0; i1 < cols; i1 = i2) {
    // A block never crosses a group start, so a group's scales see every update before it.
    i2 = std::min(cols, i1 + block);
    if (group > 0) i2 = std::min(i2, (i1 / group + 1) * group);
    const int64_t n = i2 - i1;
    at::Tensor w1 = wt.narrow(1, i1, n);                        // [E, n, R], a view
    const at::Tensor u1 = u.narrow(1, i1, n).narrow(2, i1, n);  // [E, n, n]
    const at::Tensor d = u1.diagonal(0, 1, 2);                  // [E, n]
    at::Tensor err1 = at::empty({experts, n, rows}, wt.options());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t col = i1 + i;
      if (group > 0 && col % group == 0)
        quantizer.start_group(col, wt.narrow(1, col, std::min(group, cols - col)));
      at::Tensor w = w1.select(1, i);  // [E, R], a view
      const at::Tensor q = quantizer.quantize_column(col, w);
      const at::Tensor err = (w - q) / d.select(1, i).unsqueeze(1);
      err1.select(1, i).copy_(err);
      if (i + 1 < n) {
        // w1[:, j, :] -= U[i, j] * err for the block's later columns j; the product and the
        // difference are separate ops, rounded alike on every device.
        const at::Tensor row = u1.select(1, i).narrow(1, i + 1, n - i - 1);  // [E, n-i-1]
        w1.narrow(1, i + 1, n - i - 1).sub_(row.unsqueeze(2) * err.unsqueeze(1));
      }
      w.copy_(q);
    }
    if (i2 < cols) {
      // The lazy update: wt[:, i2:, :] -= U[i1:i2, i2:]^T @ Err1
      at::Tensor tail = wt.narrow(1, i2, cols - i2);
      tail.baddbmm_(u.narrow(1, i1, n).narrow(2, i2, cols - i2).transpose(1, 2), err1,
                    /*beta=*/1, /*alpha=*/-1);
    }
    finite.logical_and_(at::isfinite(err1).flatten(1).all(1));
  }
  return finite;
}

}  // namespace

GptqResult gptq_quantize(const at::Tensor& w, const at::Tensor& h, QuantFormat format,
                         const std::vector<float>& amax, const std::vector<std::string>& names,
                         const GptqOptions& options) {
  check_inputs(w, h, format, amax, names, options);
  c10::DeviceGuard guard(w.device());
  const int64_t experts = w.size(0), rows = w.size(1), cols = w.size(2);
  // nvfp4's scales come from the weights as given, before any dead column is zeroed.
  std::unique_ptr<GptqColumnQuantizer> quantizer =
      format == QuantFormat::kINT4
          ? make_int4_column_quantizer(experts, rows, cols, w.options().dtype(at::kFloat), names)
          : make_nvfp4_column_quantizer(w, amax, names);
  // The working copy [E, C, R] in float32, where a column is an [E, R] slice (w is never written).
  at::Tensor wt = w.transpose(1, 2).to(at::kFloat, /*non_blocking=*/false, /*copy=*/true,
                                       at::MemoryFormat::Contiguous);
  const at::Tensor u = inverse_hessian_factor(h, wt, options.damp, names);
  const at::Tensor finite = sweep(wt, u, *quantizer, options.block);
  const int64_t bad = first_failing(finite);
  MQ_CHECK(bad < 0, names[static_cast<size_t>(std::max<int64_t>(bad, 0))],
           ": GPTQ's error feedback overflowed to NaN or Inf (a near-singular Hessian); raise "
           "--gptq-damp");
  GptqResult result;
  result.stored = quantizer->stored();
  if (options.dequantized) result.dequantized = wt.transpose(1, 2).contiguous();
  return result;
}

}  // namespace moequant
