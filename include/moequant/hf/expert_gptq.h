// GPTQ of one MoE layer's experts inside the calibration forward (docs/design.md, "GPTQ in the
// pipeline"): the Hessians H = 2 X^T X of every local expert's fc1 (gate and up share one, over
// the rows routed to the expert) and fc2 (down, over silu(gate) * up), accumulated as the forward
// runs; after the layer, summed over the expert's data-parallel replicas and solved for all local
// experts at once; the codes kept for the exporter, and the dequantized weights returned so the
// next layer is computed from the quantized model (GPTQ's sequential mode).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "moequant/core/format.h"
#include "moequant/core/quantize.h"
#include "moequant/forward/decoder_weights.h"
#include "moequant/parallel/communicator.h"

namespace moequant {

class HfMoeModel;

struct GptqSettings {
  bool enabled = false;
  double damp = 0.01;        // --gptq-damp: fraction of mean(diag H) added to the diagonal
  int64_t min_tokens = 256;  // --gptq-min-tokens: fewer rows -> round to nearest for that expert
  int64_t block = 128;       // lazy-batch columns
};

// The Hessians of one layer's local experts, in float64 while they accumulate (a sum whose
// rounding does not depend on how the layout splits and orders the rows, to float32 precision).
class ExpertHessianSet {
 public:
  ExpertHessianSet(std::vector<int> experts, int64_t hidden, int64_t intermediate,
                   const at::Device& device);
  // Rows x [n, H] routed to `expert` (fc1), or its [n, I] silu(gate) * up (fc2).
  void add(int expert, bool fc1, const at::Tensor& x);
  // Sums over `replicas` (the expert's data-parallel replicas): every replica then holds the
  // Hessians of every row the stage routed to its experts.
  void all_reduce(parallel::Communicator& replicas);
  const std::vector<int>& experts() const { return experts_; }
  // [E, C, C] float32 of fc1 or fc2, experts in experts() order; rows seen per expert.
  at::Tensor hessians(bool fc1) const;
  const std::vector<int64_t>& tokens() const { return tokens_; }

 private:
  std::vector<int> experts_;
  std::map<int, size_t> index_;
  at::Tensor fc1_, fc2_;         // [E, H, H], [E, I, I] float64
  std::vector<int64_t> tokens_;  // rows per expert (fc1)
};

// What GPTQ did to one layer.
struct LayerGptqResult {
  // The experts of the layer solved with GPTQ, and those with fewer than min_tokens rows (rounded
  // to nearest instead), global indices.
  std::vector<int> solved, too_few_tokens;
  double seconds = 0;
};

// Solves every local expert of `layer` (gate and up against the fc1 Hessian, down against fc2),
// stores the codes in `model` (HfMoeModel::set_precomputed), and replaces `shards` (the forward's
// float32 weights, gate/up/down per expert) with what those codes dequantize to, so that the
// layer's output can be recomputed from the quantized experts. The weight quantizers' amax must
// be final (synchronized) for nvfp4's weight_scale_2.
LayerGptqResult quantize_layer_gptq(HfMoeModel& model, int layer, const ExpertHessianSet& hessians,
                                    std::map<int, SwiGluWeights>& shards,
                                    const GptqSettings& settings);

}  // namespace moequant
