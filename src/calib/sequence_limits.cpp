#include "moequant/calib/sequence_limits.h"

#include <algorithm>
#include <cstdio>

#include "moequant/common/error.h"
#include "moequant/common/machine_memory.h"
#include "moequant/model/decoder_config.h"

namespace moequant {

namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  int u = 0;
  while (b >= 1000 && u < 6) b /= 1000, ++u;
  char buf[48];
  std::snprintf(buf, sizeof(buf), u < 6 || b < 1000 ? "%.1f %s" : "%.3g %s", b, units[u]);
  return buf;
}

// config.json's max_position_embeddings, or 0 when it has none (read from the raw JSON: the
// model layer does not interpret it).
int64_t max_positions(const ModelConfig& config) {
  const auto it = config.text.find("max_position_embeddings");
  if (it == config.text.end() || !it->is_number_integer()) return 0;
  return std::max<int64_t>(0, it->get<int64_t>());
}

}  // namespace

int64_t default_seq_len(const ModelConfig& config) {
  const int64_t positions = max_positions(config);
  return positions > 0 ? std::min<int64_t>(512, positions) : 512;
}

void check_sequence_limits(const ModelConfig& config, const SequenceRequest& r) {
  const int64_t positions = max_positions(config);
  if (positions > 0)
    MQ_CHECK(r.seq_len <= positions, r.seq_len_flag, " ", r.seq_len,
             " exceeds the model's max_position_embeddings ", positions, " (", config.dir,
             "/config.json): positions beyond it were never trained");

  // Estimated in double: the products of huge flags must not wrap.
  const DecoderConfig d = decoder_config(config);
  const double T = static_cast<double>(r.seq_len), H = static_cast<double>(d.hidden);
  const double samples = static_cast<double>(std::max<int64_t>(1, r.samples));
  const double local = std::max(1.0, samples / static_cast<double>(std::max<int64_t>(1, r.ranks)));
  const double batch = std::min(local, static_cast<double>(std::max<int64_t>(1, r.batch)));
  // The token ids of every sample (each rank holds them all); the float32 hidden states of its
  // samples, twice while a layer's output is assembled, for every model held; the attention
  // scores of a batch (scores, softmax, their product); eval: the float64 logits of a batch.
  const double ids = samples * T * 8;
  const double hidden = 2.0 * static_cast<double>(r.models) * local * T * H * 4;
  const double attention = 3.0 * batch * d.heads * T * T * 4;
  const double logits = r.logits ? 4.0 * batch * T * static_cast<double>(d.vocab) * 8 : 0.0;
  const double need = ids + hidden + attention + logits;
  const double have = static_cast<double>(physical_memory_bytes());
  if (have <= 0 || need <= have) return;
  const std::string what =
      attention + logits > ids + hidden
          ? str_cat(r.seq_len_flag, " ", r.seq_len, " with ", r.batch_flag, " ", r.batch)
          : str_cat(r.samples_flag, " ",
                    r.samples > 0 ? std::to_string(r.samples) : std::string("(every line)"), " x ",
                    r.seq_len_flag, " ", r.seq_len);
  MQ_THROW(what, " need about ", human_bytes(need), " of memory per rank for the activations ",
           "(hidden ", d.hidden, ", ", d.heads, " heads), more than this machine's ",
           human_bytes(have), ": lower ", r.samples_flag, ", ", r.seq_len_flag, " or ",
           r.batch_flag);
}

}  // namespace moequant
