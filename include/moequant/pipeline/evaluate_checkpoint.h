// The accuracy number every PTQ user asks for: the quantized model against its source on held-out
// tokens. Both run moequant's forward (equal to transformers' on the source), layer by layer; the
// quantized one with its experts dequantized from the exported tensors and, for static-activation
// schemes, every expert's inputs quantized with the exported input_scale as an engine does.
// Reported per quantized folder: perplexity, mean KL(source || quantized) of the next-token
// distributions, and top-1 agreement.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "moequant/calib/calibration_data.h"
#include "moequant/calib/sequence_limits.h"

namespace moequant {

struct EvalOptions {
  std::string source;                  // the Hugging Face folder
  std::vector<std::string> quantized;  // exported folders of it
  int64_t batch = 8;                   // sequences per forward batch
  std::string device = "cpu";
  std::function<void(size_t done, size_t total)> progress;  // layers
};

struct EvalResult {
  std::string folder;
  std::string scheme;     // what its config declares, e.g. "modelopt NVFP4"
  double perplexity = 0;  // exp(mean next-token NLL)
  double kl = 0;          // mean over positions of KL(source || quantized), nats
  double top1 = 0;        // fraction of positions with the source's argmax
};

struct EvalReport {
  int64_t tokens = 0;  // positions evaluated (next-token: seq_len - 1 per sequence)
  double source_perplexity = 0;
  std::vector<EvalResult> results;
};

// Single process on options.device. Errors name the folder (not a quantized export of the
// source, unsupported model type, a zero/negative/non-finite scale), the token (outside the
// vocabulary), or the flag whose sequences cannot fit (check_sequence_limits).
EvalReport evaluate_checkpoints(const EvalOptions& options, const CalibrationData& data);

// The sequences `moequant eval` pushes through the forward, for check_sequence_limits: the source
// and every quantized folder held at once, vocab-wide logits per batch.
SequenceRequest eval_sequences(int64_t samples, int64_t seq_len, int64_t batch,
                               size_t quantized_folders);

}  // namespace moequant
