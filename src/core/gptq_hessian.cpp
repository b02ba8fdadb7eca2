// The Hessians GPTQ needs: H = sum of 2 x^T x over the rows that entered a linear, in float32 on
// the rows' device, a bounded chunk of rows at a time.
#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <numeric>

#include "moequant/common/error.h"
#include "moequant/core/gptq.h"

namespace moequant {

namespace {

// About 64 MiB of float32 per chunk: large enough for the matmul to run at full speed.
constexpr int64_t kChunkElements = int64_t{1} << 24;

void check_rows(const at::Tensor& h, const at::Tensor& x, const std::string& name) {
  MQ_CHECK(x.defined() && x.dim() == 2, name, ": Hessian rows must be 2-D [n, C]");
  MQ_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16 ||
               x.scalar_type() == at::kHalf,
           name, ": Hessian rows must be bf16, fp16 or fp32, got ", x.scalar_type());
  MQ_CHECK(h.defined() && h.dim() == 2 && h.size(0) == h.size(1) && h.scalar_type() == at::kFloat,
           name, ": the Hessian must be float32 [C, C]");
  MQ_CHECK(x.size(1) == h.size(0), name, ": rows of ", x.size(1), " columns for a Hessian of ",
           h.size(0));
  MQ_CHECK(x.device() == h.device(), name, ": rows on ", x.device(), ", Hessian on ", h.device());
}

}  // namespace

void accumulate_hessian(at::Tensor& h, const at::Tensor& x, const std::string& name,
                        int64_t chunk_rows) {
  check_rows(h, x, name);
  const int64_t n = x.size(0), cols = x.size(1);
  if (n == 0) return;
  const int64_t step = chunk_rows > 0
                           ? chunk_rows
                           : std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, cols));
  c10::DeviceGuard guard(x.device());
  for (int64_t r = 0; r < n; r += step) {
    const at::Tensor chunk = x.narrow(0, r, std::min(step, n - r)).to(at::kFloat);
    h.addmm_(chunk.t(), chunk, /*beta=*/1, /*alpha=*/2);  // h += 2 chunk^T chunk
  }
}

ExpertHessians make_expert_hessians(int64_t experts, int64_t cols, const at::Device& device,
                                    const std::string& name) {
  MQ_CHECK(experts > 0 && cols > 0, name, ": Hessians need experts > 0 and columns > 0, got ",
           experts, " x ", cols);
  ExpertHessians hs;
  hs.name = name;
  hs.h = at::zeros({experts, cols, cols}, at::TensorOptions().dtype(at::kFloat).device(device));
  hs.tokens.assign(static_cast<size_t>(experts), 0);
  return hs;
}

void accumulate_expert_hessian(ExpertHessians& hs, int64_t expert, const at::Tensor& x,
                               int64_t chunk_rows) {
  const int64_t experts = static_cast<int64_t>(hs.tokens.size());
  MQ_CHECK(expert >= 0 && expert < experts, hs.name, ": expert ", expert, " of ", experts);
  at::Tensor h = hs.h.select(0, expert);
  accumulate_hessian(h, x, str_cat(hs.name, " (expert ", expert, ")"), chunk_rows);
  hs.tokens[static_cast<size_t>(expert)] += x.size(0);
}

void accumulate_expert_hessians(ExpertHessians& hs, const at::Tensor& x,
                                const std::vector<int64_t>& rows_per_expert, int64_t chunk_rows) {
  MQ_CHECK(rows_per_expert.size() == hs.tokens.size(), hs.name, ": ", rows_per_expert.size(),
           " row counts for ", hs.tokens.size(), " experts");
  MQ_CHECK(x.defined() && x.dim() == 2, hs.name, ": Hessian rows must be 2-D [n, C]");
  const int64_t total = std::accumulate(rows_per_expert.begin(), rows_per_expert.end(), int64_t{0});
  MQ_CHECK(total == x.size(0) && std::all_of(rows_per_expert.begin(), rows_per_expert.end(),
                                             [](int64_t n) { return n >= 0; }),
           hs.name, ": row counts per expert sum to ", total, " for ", x.size(0), " rows");
  int64_t offset = 0;
  for (size_t e = 0; e < rows_per_expert.size(); ++e) {
    const int64_t n = rows_per_expert[e];
    if (n > 0)
      accumulate_expert_hessian(hs, static_cast<int64_t>(e), x.narrow(0, offset, n), chunk_rows);
    offset += n;
  }
}

}  // namespace moequant
