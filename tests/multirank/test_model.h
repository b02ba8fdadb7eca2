// A small pure-C++ MoE model for the multi-rank tests: deterministic "full" weights, and for one
// rank of a layout the quantizers it would hold with the amax it observes on its own shards and
// the amax a single rank computes on the full model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moequant/parallel/parallel_state.h"

namespace moequant::parallel::testing {

struct ModelSpec {
  int layers = 4;
  int experts = 8;
  int hidden = 32;        // H
  int intermediate = 16;  // I of one expert
  int token_shards = 8;   // batches of calibration data, dealt to DP/EDP ranks round-robin
  uint64_t seed = 2024;
  ModelDims dims() const;
};

// Full tensors, row-major [out, in].
std::vector<float> expert_fc1(const ModelSpec& m, int layer, int expert);  // [2I, H] = [gate; up]
std::vector<float> expert_fc2(const ModelSpec& m, int layer, int expert);  // [H, I]
std::vector<float> dense_qkv(const ModelSpec& m, int layer);   // [3H, H], column-parallel
std::vector<float> dense_proj(const ModelSpec& m, int layer);  // [H, H], row-parallel

// |x| max that expert `expert` saw in token shard `shard`; -1 when it got no tokens there.
// Expert 5 of layer 1 gets no tokens at all, nor does any expert of the last layer.
float expert_input_amax(const ModelSpec& m, int layer, int expert, int shard);
// |x| max of the attention input in token shard `shard`; -1 for shard 3 of layer 0.
float dense_input_amax(const ModelSpec& m, int layer, int shard);

// One quantizer on one rank.
struct RankQuantizer {
  std::string name;
  uint32_t reduce_over;         // group bits
  std::vector<float> local;     // observed on this rank's shards
  std::vector<float> expected;  // what the single-rank run on the full model gets
  bool shared_over_ep = false;  // a grouped linear's quantizer: must agree across EP
};

// Every quantizer `state`'s rank holds, per-tensor and per-channel, weights and inputs:
//  grouped fc1/fc2 weight (ETP|EP), grouped fc1 input (ETP|EP|EDP),
//  per-expert fc1 weight (ETP), per-expert fc2 per-channel weight (ETP, row-parallel),
//  per-expert fc1 per-channel weight (none: rows are disjoint), per-expert fc1 input (ETP|EDP),
//  dense qkv weight (TP), qkv per-channel (none), proj weight (TP), proj per-channel (TP),
//  qkv input (TP|DP).
std::vector<RankQuantizer> rank_quantizers(const ModelSpec& m, const ParallelState& state);

}  // namespace moequant::parallel::testing
