// Where a checkpoint keeps the routed experts of each MoE layer, and one expert's weights read
// from there as the [out, in] matrices of a SwiGLU (gate, up [I, H], down [H, I]) that the
// exporter and the forward take, whatever the layout on disk (docs/formats.md, "Fused experts on
// disk"): one 2-D tensor per expert and projection ("<experts>.{E}.gate_proj.weight", FP8 block
// sources included); fused 3-D tensors in the family's layout (rows as nn.Linear or x @ W, gate
// and up as halves or interleaved); or fused MXFP4 blocks and scales (GPT-OSS's release),
// dequantized to the bf16 they encode.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "moequant/common/dtype.h"
#include "moequant/forward/decoder_weights.h"
#include "moequant/io/checkpoint_folder.h"
#include "moequant/model/model_config.h"

namespace moequant {

class ExpertStorage {
 public:
  enum class Kind {
    kPerExpert,   // "<experts>.{E}.<proj>.weight", [out, in]
    kFused,       // "<experts>.gate_up_proj" / ".down_proj", laid out as fused_layout() says
    kFusedMxfp4,  // "<experts>.gate_up_proj_blocks" / "_scales" (and down_proj's), rows as
                  // [out, in], gate and up interleaved as fused_layout() says
  };

  // Both must outlive this object.
  ExpertStorage(const ModelConfig& config, const io::CheckpointFolder& ckpt);

  // Every MoE layer's expert tensors present with the shapes and dtypes config.json implies,
  // MXFP4 blocks and scales that agree, no expert tensor outside config.json's experts and MoE
  // layers. Errors name the folder and the tensor. Returns the dtype the experts are read in (an
  // FP8 block or MXFP4 source's: bf16).
  DType check() const;

  Kind kind(int layer) const;
  // Gate and up rows [begin, end) of `expert` (fc1: [end - begin, H] each), or its down columns
  // [begin, end) (fc2: [H, end - begin]): read-only views of the mapping where the layout allows
  // (strided for x @ W and interleaved layouts), else bf16 copies on the CPU.
  SwiGluWeights read(int layer, int expert, bool fc1, int64_t begin, int64_t end) const;
  // max |x| of each matrix read(layer, expert, fc1, begin, end) returns, taken without decoding
  // where the storage allows: MXFP4 blocks (from their codes and scales, mxfp4_source.h) whose
  // down columns [begin, end) are whole blocks. nullopt elsewhere: read the weights.
  struct Amax {
    float gate = 0, up = 0, down = 0;
  };
  std::optional<Amax> encoded_amax(int layer, int expert, bool fc1, int64_t begin,
                                   int64_t end) const;
  // The checkpoint bytes that read(layer, expert, fc1, ...) touches for this expert (to prefetch
  // and release): its own tensors, or its slice of each fused tensor (whose edge pages, shared
  // with a neighbour expert, a release keeps).
  std::vector<io::TensorSpan> unit_spans(int layer, int expert, bool fc1) const;
  // What errors call a projection of an expert: its tensor, or "<fused>[E, gate rows]".
  std::string label(int layer, int expert, ExpertProj p) const;

 private:
  // A strided read-only view of the mapping: nothing is copied until a kernel reads it.
  at::Tensor mapped(const std::string& name, int64_t offset, std::vector<int64_t> sizes,
                    std::vector<int64_t> strides) const;

  const ModelConfig& c_;
  const io::CheckpointFolder& ckpt_;
};

}  // namespace moequant
