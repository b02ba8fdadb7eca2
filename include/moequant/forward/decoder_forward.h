// The decoder's forward over token ids, built from decoder_ops and moe_block: one layer at a
// time, so that a caller can stream weights in and out (the calibration and eval passes) or run
// the whole model in one process (forward_logits, checked against transformers' logits).
#pragma once

#include <ATen/core/Tensor.h>

#include "moequant/forward/decoder_ops.h"
#include "moequant/forward/moe_block.h"

namespace moequant {

// One decoder layer on hidden states h [B, T, H]: h + attention(norm(h)), then + the MoE block
// (through `experts`) or the dense MLP of a layer without routed experts.
at::Tensor decoder_layer(const at::Tensor& h, const DecoderLayerWeights& w, const DecoderConfig& d,
                         const RopeTable& rope, ExpertRunner* experts,
                         const ForwardHooks& hooks = {});
// Its two halves, for callers that batch them differently (calibration runs attention per batch
// of samples and the MoE block over many batches' tokens at once): h + attention(norm(h)), and
// attended + MoE block / dense MLP of norm(attended). Each keeps the shape [B, T, H]. `hooks`
// sees the inputs of the dense linears (attention, shared expert, dense MLP) and the KV cache.
at::Tensor attention_block(const at::Tensor& h, const DecoderLayerWeights& w,
                           const DecoderConfig& d, const RopeTable& rope,
                           const ForwardHooks& hooks = {});
at::Tensor mlp_block(const at::Tensor& attended, const DecoderLayerWeights& w,
                     const DecoderConfig& d, ExpertRunner* experts, const ForwardHooks& hooks = {});

// Final norm and the output projection: logits [B, T, V].
at::Tensor output_logits(const at::Tensor& h, const ModelEnds& ends, const DecoderConfig& d);

// The whole model in one process, every expert of a layer loaded with it, on `device`: logits
// [B, T, V] (float32) of ids [B, T] (int64). Token ids outside the vocabulary are an error.
at::Tensor forward_logits(const io::CheckpointFolder& ckpt, const ModelConfig& config,
                          const at::Tensor& ids, const at::Device& device);

// Embedding lookup with the vocabulary checked: [B, T] ids -> [B, T, H].
at::Tensor embed_tokens(const at::Tensor& ids, const ModelEnds& ends, const DecoderConfig& d);

}  // namespace moequant
