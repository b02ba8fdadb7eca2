// megatron_style_loop: moequant embedded in a Megatron-style C++ training loop. The walk-through
// of docs/embedding.md.
//
//   1. The host initializes MPI, builds its OWN communicators and lets moequant adopt them.
//   2. It trains a small expert-parallel MoE stack (router, top-k dispatch over EP, MoeExperts
//      split over ETP) for a few steps on synthetic data.
//   3. In the same process, without reloading: calibration mode on, calibration batches through
//      the same forward (the experts' input quantizers observe what EP dispatch delivers),
//      weight calibration, one amax synchronization, export of a Hugging Face checkpoint.
//
//   mpirun -np 4 megatron_style_loop --ep 2 --etp 2 --format fp8 --out /tmp/moe-fp8
#include <mpi.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "megatron_loop/host_comms.h"
#include "megatron_loop/moe_model.h"
#include "megatron_loop/options.h"
#include "megatron_loop/training.h"
#include "moequant/moequant.h"

namespace {

using moequant::parallel::Group;

// The config.json of the exported folder: a Qwen3-MoE-shaped description of the host's model
// (the exporter names tensors from it: model.layers.{L}.mlp.experts.{E}.gate_proj.weight, ...).
moequant::ModelConfig export_config(const loop::LoopOptions& o) {
  nlohmann::json raw = {{"architectures", nlohmann::json::array({"Qwen3MoeForCausalLM"})},
                        {"model_type", "qwen3_moe"},
                        {"hidden_size", o.hidden},
                        {"moe_intermediate_size", o.intermediate},
                        {"num_hidden_layers", o.layers},
                        {"num_experts", o.experts},
                        {"num_experts_per_tok", o.top_k},
                        {"norm_topk_prob", true},
                        {"decoder_sparse_step", 1},
                        {"mlp_only_layers", nlohmann::json::array()},
                        {"torch_dtype", "float32"}};
  return moequant::parse_model_config(std::move(raw), "", "the example's model description");
}

// Experts that no calibration token was routed to, counted over every rank (each rank counted
// the routing decisions of its own tokens). Their weights are calibrated like any other; their
// input_scale is the amax the layer's experts share (one input quantizer per GroupedLinear).
std::string unrouted_experts(loop::MoeStack& model, moequant::parallel::Communicator& world) {
  std::vector<int64_t> counts;
  for (int l = 0; l < model->num_layers(); ++l) {
    const auto& c = model->block(l).routed_tokens();
    counts.insert(counts.end(), c.begin(), c.end());
  }
  world.all_reduce_sum(counts.data(), counts.size());  // one collective for every layer
  std::string list;
  int missing = 0;
  const size_t experts = model->block(0).routed_tokens().size();
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] != 0) continue;
    list += std::string(missing++ ? ", " : "") + "layer " + std::to_string(i / experts) +
            " expert " + std::to_string(i % experts);
  }
  if (missing == 0) return "";
  return "calibration routed no tokens to " + std::to_string(missing) + " expert(s): " + list +
         " (their input_scale is the input amax their layer's experts share)";
}

int run(const loop::LoopOptions& o) {
  int world_size = 1, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const bool rank0 = rank == 0;

  // ---- 1. parallel state and the host's own communicators, adopted by moequant ----------------
  moequant::parallel::ParallelSizes sizes;
  sizes.ep = o.ep;
  sizes.etp = o.etp;
  moequant::parallel::ModelDims dims;
  dims.num_layers = o.layers;
  dims.num_experts = o.experts;
  dims.expert_intermediate = o.intermediate;
  std::unique_ptr<moequant::parallel::ParallelState> layout;
  try {
    layout = std::make_unique<moequant::parallel::ParallelState>(world_size, rank, sizes, dims);
  } catch (const moequant::Error& e) {  // the same on every rank: nobody waits for a peer
    if (rank0) std::fprintf(stderr, "megatron_style_loop: %s\n", e.what());
    return 2;
  }
  const moequant::parallel::ParallelState& ps = *layout;
  const bool cuda = o.device == "cuda";
  const int local_rank = loop::node_local_rank();
  const at::Device device = cuda ? at::Device(at::kCUDA, local_rank) : at::Device(at::kCPU);
  loop::HostComms host_comms(ps, cuda, local_rank);
  const moequant::parallel::ProcessGroups groups = host_comms.adopt(ps);
  if (rank0) std::printf("layout %s, device %s\n", ps.describe().c_str(), o.device.c_str());

  // ---- 2. the host's model and its training loop ----------------------------------------------
  loop::ModelConfig mc;
  mc.layers = o.layers;
  mc.experts = o.experts;
  mc.hidden = o.hidden;
  mc.intermediate = o.intermediate;
  mc.top_k = o.top_k;
  mc.avoid_expert = o.avoid_expert;
  mc.seed = o.seed;
  mc.format = moequant::format_from_name(o.format);
  loop::MoeStack model(mc, groups, device);
  if (!o.skip_train) {
    loop::Trainer trainer(model, groups, o, device);
    for (int s = 0; s < o.steps; ++s) {
      const double loss = trainer.step(s);
      if (rank0) std::printf("step %d loss %.6f\n", s + 1, loss);
      std::fflush(stdout);
    }
  }

  // ---- 3. calibrate inputs: calibration mode turns autograd off and input observation on ------
  {
    moequant::CalibrationMode calibration(*model);
    for (int l = 0; l < model->num_layers(); ++l) model->block(l).reset_routed_tokens();
    for (int b = 0; b < o.calib_batches; ++b)
      model->forward(loop::batch_slice(o.seed, 3, b, o.tokens, o.hidden, ps.dense_coord().dp,
                                       ps.dp(), device));
  }
  const std::string unrouted = unrouted_experts(model, groups.world());
  if (rank0 && !unrouted.empty()) std::printf("warning: %s\n", unrouted.c_str());

  // ---- 4. calibrate weights, synchronize every amax over its groups ---------------------------
  const moequant::WeightCalibrationReport weights = moequant::calibrate_weights(*model);
  const moequant::parallel::AmaxSyncReport sync = moequant::sync_quantizers(*model, groups);
  if (rank0)
    std::printf(
        "calibrated %zu expert weights on rank 0; synchronized %zu quantizers with %zu "
        "collective(s)\n",
        weights.tensors, sync.entries, sync.total_collectives());

  // ---- 5. export: each expert's shards gathered at one writer, quantized, written -------------
  std::map<int, moequant::MoeExperts> experts;
  for (int l = 0; l < model->num_layers(); ++l) experts.emplace(l, model->block(l).experts);
  moequant::ModuleExpertSource source(experts);
  moequant::ExportOptions eo;
  eo.out_dir = o.out;
  eo.overwrite = o.overwrite;
  // Calibration batches ran through the model: the static-activation schemes (ModelOpt FP8 /
  // NVFP4 with input_scale) are written; without them, the weight-only ones.
  eo.activations_calibrated = o.calib_batches > 0;
  eo.device = o.device;
  const moequant::ExportSummary summary =
      moequant::export_checkpoint(export_config(o), ps, groups.world(), source, eo);
  if (rank0) {
    for (const std::string& w : summary.warnings) std::printf("warning: %s\n", w.c_str());
    std::printf("wrote %s: %zu tensors in %zu file(s), %s\n", o.out.c_str(), summary.tensors,
                summary.files, summary.scheme.names().description.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // The host owns MPI: moequant finds it initialized and leaves it to the host to finalize.
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  loop::LoopOptions options;
  try {
    options = loop::parse_options(argc, argv);
  } catch (const std::exception& e) {  // the same on every rank
    if (rank == 0) std::fprintf(stderr, "megatron_style_loop: %s\n", e.what());
    MPI_Finalize();
    return 2;
  }
  // An exception on any rank ends the whole job (MPI_Abort) instead of leaving peers waiting.
  const int rc = moequant::parallel::run_or_abort_job([&] { return run(options); });
  MPI_Finalize();
  return rc;
}
