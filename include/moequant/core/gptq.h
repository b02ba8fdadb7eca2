// GPTQ (Frantar et al., 2022, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers", Algorithm 1 with lazy batch updates) for the E expert matrices of one
// projection at once, on the tensors' device (CPU or CUDA), and the Hessians it needs
// (docs/design.md, "GPTQ"). The quantizer inside the sweep is the format's own (docs/formats.md),
// so the codes GPTQ chooses are stored in exactly the tensors quantize_weight stores.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "moequant/core/format.h"
#include "moequant/core/quantize.h"

namespace moequant {

// ---- Hessians ---------------------------------------------------------------------------------

// h [C, C] float32 += 2 x^T x for x [n, C] (bf16, fp16 or fp32, widened to float32), accumulated
// in float32 on x's device (h must live there). Rows are taken `chunk_rows` at a time (0: as many
// as make about 16M elements), so a huge n never makes an n x C float32 copy at once. Errors name
// `name`.
void accumulate_hessian(at::Tensor& h, const at::Tensor& x, const std::string& name,
                        int64_t chunk_rows = 0);

// The Hessians of the E expert matrices of one projection, and how many rows (tokens) reached
// each expert: what the caller needs for GPTQ and for its "too few tokens" rule. Reducing them
// over ranks is summing both.
struct ExpertHessians {
  std::string name;             // the projection, for messages
  at::Tensor h;                 // [E, C, C] float32
  std::vector<int64_t> tokens;  // rows accumulated into h[e]
};

// E zero Hessians [C, C] on `device`.
ExpertHessians make_expert_hessians(int64_t experts, int64_t cols, const at::Device& device,
                                    const std::string& name);
// Rows x [n, C] that reached expert `expert`.
void accumulate_expert_hessian(ExpertHessians& hs, int64_t expert, const at::Tensor& x,
                               int64_t chunk_rows = 0);
// x [N, C] holding every expert's rows consecutively, rows_per_expert[e] of them for expert e
// (summing to N): the order a MoE dispatch sorts its tokens in.
void accumulate_expert_hessians(ExpertHessians& hs, const at::Tensor& x,
                                const std::vector<int64_t>& rows_per_expert,
                                int64_t chunk_rows = 0);

// ---- The solver ------------------------------------------------------------------------------

struct GptqOptions {
  // Fraction of the mean of diag(H) added to H's diagonal (GPTQ's percdamp, --gptq-damp).
  double damp = 0.01;
  // Columns per lazy batch: the columns right of a block are updated once per block, by one
  // matmul. For int4 a block also ends where a 128-column scale group begins (see design.md).
  int64_t block = 128;
  // Return the dequantized matrices too (GPTQ's sequential mode runs the next layer from them).
  bool dequantized = true;
};

struct GptqResult {
  // Per matrix, its stored tensors in the format's layout order, as quantize_weight returns them,
  // on the input's device.
  std::vector<std::vector<StoredTensor>> stored;
  // [E, R, C] float32: exactly what `stored` dequantizes to (dequantize_weight); undefined when
  // options.dequantized is false.
  at::Tensor dequantized;
};

// Quantizes the E matrices w [E, R, C] (rows are output channels; bf16, fp16 or fp32) to `format`
// (kINT4 or kNVFP4) with GPTQ against their Hessians h [E, C, C] (float32, on w's device).
// `amax`: nvfp4's per-matrix quantizer amax (weight_scale_2 = amax / (6 * 448)), E values; int4
// ignores it. `names`: one checkpoint name per matrix, used in every error. Neither w nor h is
// modified. Peak memory on their device is about three float32 copies of h plus two of w; the
// caller bounds it by how many matrices it passes at once.
GptqResult gptq_quantize(const at::Tensor& w, const at::Tensor& h, QuantFormat format,
                         const std::vector<float>& amax, const std::vector<std::string>& names,
                         const GptqOptions& options = {});

}  // namespace moequant
