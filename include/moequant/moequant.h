// moequant's public API for a host program (a training loop that embeds it), in one include.
// docs/embedding.md walks through it with examples/megatron_style_loop.cpp.
//
//   parallel state      parallel::ParallelState (layout arithmetic), parallel::ProcessGroups (split
//   from a
//                       world, or adopt the host's communicators: parallel::MpiCommunicator::wrap,
//                       parallel::NcclCommunicator::wrap)
//   quantizable modules GroupedLinear, MoeExperts, Linear, FusedExperts, SequentialExperts;
//                       any class deriving QuantModule takes part
//   calibration         CalibrationMode (inputs, in the host's own forward), calibrate_weights
//   synchronization     sync_quantizers (every quantizer over the groups its scope names)
//   GPTQ                ExpertHessians (accumulate in the host's forward), gptq_quantize (the
//                       experts of one projection, batched)
//   export              export_checkpoint with an ExportSource (ModuleExpertSource) and an
//                       ModelConfig describing the checkpoint to write (parse_model_config)
//   the whole job       quantize_checkpoint (a Hugging Face folder in, a quantized folder out)
//   failures            parallel::agree_on_error, parallel::run_or_abort_job
#pragma once

#include "moequant/calib/calibrate.h"
#include "moequant/calib/quantizer_sync.h"
#include "moequant/common/dtype.h"
#include "moequant/common/error.h"
#include "moequant/core/format.h"
#include "moequant/core/gptq.h"
#include "moequant/core/quantize.h"
#include "moequant/core/tensor_quantizer.h"
#include "moequant/export/exporter.h"
#include "moequant/export/module_expert_source.h"
#include "moequant/export/module_weights.h"
#include "moequant/model/model_config.h"
#include "moequant/modules/fused_experts.h"
#include "moequant/modules/grouped_linear.h"
#include "moequant/modules/linear.h"
#include "moequant/modules/moe_experts.h"
#include "moequant/modules/quant_module.h"
#include "moequant/modules/sequential_experts.h"
#include "moequant/parallel/communicator.h"
#include "moequant/parallel/error_agreement.h"
#include "moequant/parallel/job_abort.h"
#include "moequant/parallel/mpi_communicator.h"
#include "moequant/parallel/parallel_state.h"
#include "moequant/parallel/process_groups.h"
#include "moequant/parallel/single_communicator.h"
#include "moequant/pipeline/quantize_checkpoint.h"

#ifdef MOEQUANT_HAS_NCCL
#include "moequant/parallel/nccl_communicator.h"
#endif
