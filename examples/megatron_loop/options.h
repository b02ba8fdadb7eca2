// Command-line flags of the megatron_style_loop example.
#pragma once

#include <cstdint>
#include <string>

namespace loop {

struct LoopOptions {
  // Layout (DP = EDP x EP x ETP follows from the world size; TP = PP = 1 here).
  int ep = 1;
  int etp = 1;
  // Model: a stack of MoE blocks (router, top-k routed SwiGLU experts, residual).
  int layers = 2;
  int experts = 8;
  int64_t hidden = 64;
  int64_t intermediate = 32;  // of one expert
  int top_k = 2;
  // Training on synthetic data.
  int steps = 20;
  int64_t tokens = 256;  // global tokens per batch, split over the data-parallel ranks
  double lr = 3e-3;
  bool skip_train = false;
  uint64_t seed = 1234;
  // Calibration and export.
  int calib_batches = 4;
  int avoid_expert = -1;  // >= 0: the router never picks this global expert
  std::string format = "fp8";
  std::string out;
  bool overwrite = false;
  std::string device = "cpu";  // "cpu" (MPI) or "cuda" (NCCL)
};

// Parses argv; prints usage and exits 0 on --help, throws std::invalid_argument on bad flags.
LoopOptions parse_options(int argc, char** argv);

}  // namespace loop
