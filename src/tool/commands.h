// The subcommands of the `moequant` tool. Each add_* registers its options on the app and
// returns a flag-setting callback target; run_* executes it and returns the exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace moequant::tool {

struct QuantizeArgs {
  std::string model;  // empty: the built-in model
  std::string format = "fp8";
  std::string out;
  int tp = 0, ep = 0, etp = 0, pp = 0;  // 0: not given
  std::vector<std::string> exclude;
  std::string quantize = "experts";  // or "all-linear"
  std::string kv_cache = "none";     // or "fp8"
  bool calib_all_experts = false;
  std::string algorithm = "max";  // or "gptq"
  double gptq_damp = 0.01;
  int64_t gptq_min_tokens = 256;
  bool overwrite = false;
  bool allow_partial_blocks = false;
  std::string expert_amax = "shared";
  std::string device = "cpu";
  std::string max_shard_size = "2GB";
  bool fsync = false;
  int threads = 0;         // 0: the rank's share of its node's cores
  std::string calib_data;  // "" (weights only), a .jsonl, or "random"
  int64_t calib_samples = 0, calib_seq_len = 0, calib_batch = 8;  // seq_len 0: the default
  uint64_t calib_seed = 0;
  std::string report_json;  // write the run's report (timings, per-rank stats) here
  double timeout_s = 0;     // 0: the default (MOEQUANT_COLLECTIVE_TIMEOUT_S or 10 min)
  bool quiet = false;
  bool no_table = false;
};
CLI::App* add_quantize_command(CLI::App& app, QuantizeArgs& args);
int run_quantize(const QuantizeArgs& args);

struct InspectArgs {
  std::string dir;
  bool json = false;
};
CLI::App* add_inspect_command(CLI::App& app, InspectArgs& args);
int run_inspect(const InspectArgs& args);

struct VerifyArgs {
  std::string source;
  std::string quantized;
  double tolerance = 0;  // 0: the format's default
  bool json = false;
  bool quiet = false;
};
CLI::App* add_verify_command(CLI::App& app, VerifyArgs& args);
int run_verify(const VerifyArgs& args);

struct GenerateArgs {
  std::string out;
  std::string model_type = "qwen3_moe";
  int layers = 2, experts = 8, shards = 1, top_k = 2, heads = 4, kv_heads = 2;
  int64_t hidden = 64, intermediate = 32, head_dim = 0, vocab = 256;
  std::vector<int> dense_layers;
  bool fused = false;
  std::string source_dtype = "bf16";
  int64_t dense_intermediate = 0;
  int mtp_layers = -1;  // -1: the family's own
  uint64_t seed = 0;
};
CLI::App* add_generate_command(CLI::App& app, GenerateArgs& args);
int run_generate(const GenerateArgs& args);

struct EvalArgs {
  std::string source;
  std::vector<std::string> quantized;
  std::string data;
  int64_t samples = 0, seq_len = 0, batch = 8;  // seq_len 0: the default
  std::string device = "cpu";
  uint64_t seed = 0;
  bool quiet = false;
};
CLI::App* add_eval_command(CLI::App& app, EvalArgs& args);
int run_eval(const EvalArgs& args);

// "5GB", "512MiB", "1000" -> bytes, within [min_bytes, max_bytes]; throws moequant::Error
// naming the flag ("0.5", "inf", "1e30GB" and units it does not know are refused).
uint64_t parse_size(const std::string& text, const std::string& flag, uint64_t min_bytes,
                    uint64_t max_bytes);

// --max-shard-size: from 1 KB (below it every tensor is a file of its own anyway) to 1 PB.
constexpr uint64_t kMinShardBytes = 1000;
constexpr uint64_t kMaxShardBytes = 1000000000000000ull;

}  // namespace moequant::tool
