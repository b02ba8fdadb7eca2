// Limits of the token sequences a calibration (or evaluation) run pushes through the forward,
// checked before anything is allocated: a sequence longer than the model's positions, or more
// activations than the machine has memory (--calib-samples 1e12 asked for terabytes, and ended in
// std::bad_alloc or a LibTorch trace), is refused in one line naming the flag.
#pragma once

#include <cstdint>
#include <string>

#include "moequant/model/model_config.h"

namespace moequant {

struct SequenceRequest {
  int64_t samples = 0;  // 0: not known yet (every line of a file): sized as one sequence
  int64_t seq_len = 0;
  int64_t batch = 1;    // sequences per attention batch
  int64_t ranks = 1;    // ranks sharing the samples (data parallel)
  int64_t models = 1;   // hidden states held at once (eval: the source and every export)
  bool logits = false;  // vocab-wide logits per batch (eval)
  std::string samples_flag = "--calib-samples";
  std::string seq_len_flag = "--calib-seq-len";
  std::string batch_flag = "--calib-batch";
};

// Throws naming the flag when seq_len exceeds config.json's max_position_embeddings (when it has
// one), or when the estimated activation bytes of one rank exceed this machine's memory.
void check_sequence_limits(const ModelConfig& config, const SequenceRequest& request);

// The sequence length used when none is asked for: 512, or config.json's max_position_embeddings
// when smaller (a tiny model's 128 positions).
int64_t default_seq_len(const ModelConfig& config);

}  // namespace moequant
