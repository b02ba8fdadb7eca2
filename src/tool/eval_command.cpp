// `moequant eval --source S --quantized Q [--quantized Q2 ...] --data FILE`: the quantized
// models against their source on held-out tokens (perplexity, KL divergence, top-1 agreement),
// one row per exported folder. The work is the library's (evaluate_checkpoints).
#include <cstdio>

#include "commands.h"
#include "flag_checks.h"
#include "moequant/calib/calibration_data.h"
#include "moequant/calib/sequence_limits.h"
#include "moequant/common/error.h"
#include "moequant/model/decoder_config.h"
#include "moequant/pipeline/evaluate_checkpoint.h"
#include "progress.h"

namespace moequant::tool {

CLI::App* add_eval_command(CLI::App& app, EvalArgs& a) {
  CLI::App* c = app.add_subcommand(
      "eval",
      "Evaluate exported folders against their source on held-out tokens: perplexity, mean KL "
      "divergence and top-1 agreement of the next-token distributions (experts dequantized, and "
      "for static-activation schemes their inputs quantized with the exported input scales)");
  c->add_option("--source", a.source, "The source Hugging Face folder")->required();
  c->add_option("--quantized", a.quantized, "An exported folder (repeatable)")->required();
  c->add_option("--data", a.data,
                "Held-out data: a .jsonl of {\"input_ids\": [...]} lines, text (.txt, or .jsonl of "
                "{\"text\": ...} lines, tokenized with the source's tokenizer.json), or 'random'")
      ->required();
  c->add_option("--samples", a.samples, "Sequences (default: every line; random: 16)")
      ->check(positive_number());
  c->add_option("--seq-len", a.seq_len,
                "Tokens per sequence (default: 512, or the source's max_position_embeddings "
                "when smaller; at most that)")
      ->check(number_in(2, 1 << 20));
  c->add_option("--batch", a.batch, "Sequences per forward batch")
      ->check(number_in(1, 1 << 20))
      ->capture_default_str();
  c->add_option("--device", a.device, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  c->add_option("--seed", a.seed, "Seed of --data random")->capture_default_str();
  c->add_flag("--quiet,-q", a.quiet, "Print the table only");
  return c;
}

int run_eval(const EvalArgs& a) {
  const ModelConfig config = read_model_config(a.source);
  const int64_t vocab = decoder_config(config).vocab;
  // Before the data is read or made: sizes that cannot fit this machine.
  const int64_t seq_len = a.seq_len > 0 ? a.seq_len : default_seq_len(config);
  SequenceRequest request = eval_sequences(a.samples, seq_len, a.batch, a.quantized.size());
  if (a.data == "random" && request.samples == 0) request.samples = 16;
  check_sequence_limits(config, request);
  const CalibrationData data =
      load_calibration_data(a.data, a.source, a.samples, seq_len, vocab, a.seed);
  EvalOptions o;
  o.source = a.source;
  o.quantized = a.quantized;
  o.batch = a.batch;
  o.device = a.device;
  Progress progress("evaluating", "layers", !a.quiet);
  o.progress = [&](size_t d, size_t t) { progress.update(d, t); };
  const EvalReport r = evaluate_checkpoints(o, data);
  progress.finish();
  std::printf("source %s: perplexity %.4f over %lld next-token positions (%s)\n", a.source.c_str(),
              r.source_perplexity, static_cast<long long>(r.tokens), data.source.c_str());
  std::printf("%-40s %-26s %12s %10s %12s %8s\n", "quantized", "scheme", "perplexity", "delta",
              "mean KL", "top-1");
  for (const EvalResult& e : r.results)
    std::printf("%-40s %-26s %12.4f %+9.3f%% %12.3e %8.4f\n", e.folder.c_str(), e.scheme.c_str(),
                e.perplexity, 100.0 * (e.perplexity / r.source_perplexity - 1.0), e.kl, e.top1);
  return 0;
}

}  // namespace moequant::tool
