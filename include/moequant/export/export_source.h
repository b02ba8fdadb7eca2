// What the exporter reads (docs/design.md, "The library pipeline"): this rank's shards of the
// routed experts with the quantizers that cover them, and the source tensors that pass through
// unchanged. HfMoeModel implements it over a Hugging Face folder, ModuleExpertSource over a host
// program's MoeExperts modules.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moequant/common/dtype.h"
#include "moequant/core/quantize.h"
#include "moequant/core/tensor_quantizer.h"
#include "moequant/model/model_tensors.h"

namespace moequant {

// A tensor of the source written as it is (not quantized), in the dtype and shape given: the
// source's own, or the bf16 a source's FP8 block weight encodes.
struct PassthroughTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

// One expert's ETP shard as this rank holds it: fc1 gives `gate` and `up` ([I/T, H] each, rows
// r*I/T.. of ETP rank r), fc2 gives `down` ([H, I/T], the same columns).
struct ExpertShard {
  at::Tensor gate, up, down;
};

class ExportSource {
 public:
  virtual ~ExportSource() = default;

  // The dtype of the expert weights (what an unquantized expert projection is stored in).
  virtual DType expert_dtype() const = 0;
  // The format the expert weight quantizers hold: the format the export writes. The exporter
  // checks that every rank's source says the same and that every quantizer it uses holds it.
  virtual QuantFormat weight_format() const = 0;

  // This rank's shard of a local expert (layer and expert global). Read-only views where the
  // source allows (no copy), on any device. Called from several threads at once.
  virtual ExpertShard expert_shard(int layer, int expert, bool fc1) const = 0;
  // A hint that expert_shard(layer, expert, fc1) follows soon (start reading it). Thread-safe.
  virtual void prefetch_expert(int layer, int expert, bool fc1) const;
  // A hint that the shard's bytes are no longer needed (drop them from memory). Thread-safe.
  virtual void release_expert(int layer, int expert, bool fc1) const;

  // The quantizers covering a local expert's fc1 (gate and up) or fc2 (down): its weight
  // quantizer, and the input quantizer whose amax gives input_scale.
  virtual std::shared_ptr<TensorQuantizer> weight_quantizer(int layer, int expert,
                                                            bool fc1) const = 0;
  virtual std::shared_ptr<TensorQuantizer> input_quantizer(int layer, int expert,
                                                           bool fc1) const = 0;
  // The layer's input quantizer that observed every token of the layer's fc1 or fc2 (the same
  // as input_quantizer() when experts share one): the fallback of an expert that saw none.
  virtual std::shared_ptr<TensorQuantizer> shared_input_quantizer(int layer, bool fc1) const = 0;

  // The tensors written unquantized, the same list on every rank (none by default), their data
  // (a contiguous CPU tensor of the listed dtype and shape: a view of the source where it can be;
  // thread-safe) and a hint that they were written.
  virtual std::vector<PassthroughTensor> passthrough_tensors() const;
  // Other files the output folder must carry for a loader (tokenizer.json,
  // tokenizer_config.json, generation_config.json, chat templates, ...): paths copied as they are.
  // None by default.
  virtual std::vector<std::string> side_files() const;
  virtual at::Tensor passthrough_data(const std::string& name) const;
  virtual void release_passthrough(const std::string& name) const;

  // The stored tensors of an expert unit already quantized by the source (GPTQ during calibration:
  // per weight of the unit, gate and up | down, in the format's layout order, on the CPU), or
  // nullptr: the exporter quantizes the weights itself (round to nearest).
  virtual const std::vector<std::vector<StoredTensor>>* precomputed_unit(int layer, int expert,
                                                                         bool fc1) const {
    (void)layer, (void)expert, (void)fc1;
    return nullptr;
  }

  // Whether the routed experts' weights are E2M1 codes times power-of-two scales (an MXFP4
  // source): an nvfp4 export then keeps each code where e4m3 holds its block's scale
  // (core/nvfp4_from_e2m1.h) instead of re-rounding the weights.
  virtual bool experts_are_e2m1_coded() const { return false; }

  // ---- Beyond the routed experts (--quantize all-linear, --kv-cache fp8): none by default ----
  // Whether the source holds the quantizers of every dense linear / KV cache of its stage.
  virtual bool has_dense_quantizers() const { return false; }
  virtual bool has_kv_cache_quantizers() const { return false; }
  // A dense linear's whole weight [out, in] (its TP shards gathered: from a mapped source, the
  // file itself; an FP8 block source's weight as the bf16 it encodes), on the CPU. Thread-safe.
  virtual at::Tensor dense_weight(const DenseLinear& linear) const;
  // The weight and input quantizers of layer `layer`'s fusion group `group` (model_tensors.h),
  // on the ranks of the layer's pipeline stage.
  virtual std::shared_ptr<TensorQuantizer> dense_weight_quantizer(int layer, TensorUse group) const;
  virtual std::shared_ptr<TensorQuantizer> dense_input_quantizer(int layer, TensorUse group) const;
  // An attention layer's KV-cache quantizer (keys or values), on the ranks of its stage.
  virtual std::shared_ptr<TensorQuantizer> kv_cache_quantizer(int layer, bool keys) const;
};

}  // namespace moequant
