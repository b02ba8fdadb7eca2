#include "options.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <stdexcept>

#include "moequant/core/format.h"

namespace loop {

namespace {

const char* kUsage =
    R"(megatron_style_loop: train a small expert-parallel MoE stack, then calibrate,
synchronize and export it with moequant, in the same process.

  mpirun -np 4 megatron_style_loop --ep 2 --etp 2 --format fp8 --out /tmp/moe-fp8

  --ep N              expert-parallel size (default 1)
  --etp N             expert-tensor-parallel size (default 1); world = EDP x EP x ETP
  --layers N          MoE blocks (default 2)
  --experts N         routed experts per block (default 8)
  --hidden N          hidden size (default 64)
  --intermediate N    expert intermediate size (default 32)
  --top-k N           experts per token (default 2)
  --steps N           training steps (default 20)
  --tokens N          global tokens per batch (default 256)
  --lr X              Adam learning rate (default 3e-3)
  --skip-train        export the freshly seeded weights
  --seed N            seed of weights and data (default 1234)
  --calib-batches N   calibration batches (default 4)
  --avoid-expert E    the router never picks global expert E (an expert left without tokens)
  --format F          none, fp8, nvfp4, fp8_block or int4 (default fp8)
  --out DIR           output folder (required)
  --overwrite         replace an existing output folder
  --device D          cpu (MPI) or cuda (NCCL) (default cpu)
)";

int64_t to_int(const std::string& flag, const std::string& v) {
  size_t pos = 0;
  int64_t x = 0;
  try {
    x = std::stoll(v, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos != v.size() || v.empty())
    throw std::invalid_argument(flag + ": '" + v + "' is not an integer");
  return x;
}

}  // namespace

LoopOptions parse_options(int argc, char** argv) {
  LoopOptions o;
  using Setter = std::function<void(const std::string&, const std::string&)>;
  auto positive = [](int64_t* dst) {
    return [dst](const std::string& f, const std::string& v) {
      *dst = to_int(f, v);
      if (*dst <= 0) throw std::invalid_argument(f + " must be positive");
    };
  };
  int64_t ep = o.ep, etp = o.etp, layers = o.layers, experts = o.experts, top_k = o.top_k,
          steps = o.steps, calib = o.calib_batches, avoid = o.avoid_expert;
  int64_t seed = static_cast<int64_t>(o.seed);
  const std::map<std::string, Setter> valued = {
      {"--ep", positive(&ep)},
      {"--etp", positive(&etp)},
      {"--layers", positive(&layers)},
      {"--experts", positive(&experts)},
      {"--hidden", positive(&o.hidden)},
      {"--intermediate", positive(&o.intermediate)},
      {"--top-k", positive(&top_k)},
      {"--steps", [&](const std::string& f, const std::string& v) { steps = to_int(f, v); }},
      {"--tokens", positive(&o.tokens)},
      {"--lr", [&](const std::string&, const std::string& v) { o.lr = std::stod(v); }},
      {"--seed", [&](const std::string& f, const std::string& v) { seed = to_int(f, v); }},
      {"--calib-batches",
       [&](const std::string& f, const std::string& v) { calib = to_int(f, v); }},
      {"--avoid-expert", [&](const std::string& f, const std::string& v) { avoid = to_int(f, v); }},
      {"--format", [&](const std::string&, const std::string& v) { o.format = v; }},
      {"--out", [&](const std::string&, const std::string& v) { o.out = v; }},
      {"--device", [&](const std::string&, const std::string& v) { o.device = v; }},
  };
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (flag == "--skip-train") {
      o.skip_train = true;
    } else if (flag == "--overwrite") {
      o.overwrite = true;
    } else if (valued.count(flag)) {
      if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
      valued.at(flag)(flag, argv[++i]);
    } else {
      throw std::invalid_argument("unknown flag '" + flag + "' (see --help)");
    }
  }
  o.ep = static_cast<int>(ep);
  o.etp = static_cast<int>(etp);
  o.layers = static_cast<int>(layers);
  o.experts = static_cast<int>(experts);
  o.top_k = static_cast<int>(top_k);
  o.steps = static_cast<int>(steps);
  o.calib_batches = static_cast<int>(calib);
  o.avoid_expert = static_cast<int>(avoid);
  o.seed = static_cast<uint64_t>(seed);
  moequant::format_from_name(o.format);  // throws listing the valid names
  if (o.out.empty()) throw std::invalid_argument("--out is required (see --help)");
  if (o.device != "cpu" && o.device != "cuda")
    throw std::invalid_argument("--device must be cpu or cuda");
  if (o.top_k > o.experts) throw std::invalid_argument("--top-k exceeds --experts");
  if (o.avoid_expert >= o.experts) throw std::invalid_argument("--avoid-expert out of range");
  if (o.steps < 0 || o.calib_batches < 0)
    throw std::invalid_argument("--steps and --calib-batches must be >= 0");
  return o;
}

}  // namespace loop
