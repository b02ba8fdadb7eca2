// moequant's public API for a host program (a training loop that embeds it), in one include.
// docs/embedding.md walks through it with examples/megatron_style_loop.cpp.
//
//   parallel state      dist::ParallelState (layout arithmetic), dist::ProcessGroups (split from a
//                       world, or adopt the host's communicators: dist::MpiCommunicator::wrap,
//                       dist::NcclCommunicator::wrap)
//   quantizable modules GroupedLinear, MoeExperts, Linear, FusedExperts, SequentialExperts;
//                       any class deriving QuantModule takes part
//   calibration         CalibrationMode (inputs, in the host's own forward), calibrate_weights
//   synchronization     sync_amax (every quantizer over the groups its scope names)
//   export              export_checkpoint with an ExpertSource (ModuleExpertSource) and an
//                       HfMoeConfig describing the checkpoint to write
//   failures            dist::agree_on_error, dist::run_or_abort_job
#pragma once

#include "moequant/core/amax_sync.h"
#include "moequant/core/calibrate.h"
#include "moequant/core/dtype.h"
#include "moequant/core/error.h"
#include "moequant/core/format.h"
#include "moequant/core/module_export.h"
#include "moequant/core/quantize.h"
#include "moequant/core/tensor_quantizer.h"
#include "moequant/dist/communicator.h"
#include "moequant/dist/error_agreement.h"
#include "moequant/dist/job_abort.h"
#include "moequant/dist/mpi_communicator.h"
#include "moequant/dist/parallel_state.h"
#include "moequant/dist/process_groups.h"
#include "moequant/dist/single_communicator.h"
#include "moequant/export/exporter.h"
#include "moequant/hf/hf_config.h"
#include "moequant/modules/fused_experts.h"
#include "moequant/modules/grouped_linear.h"
#include "moequant/modules/linear.h"
#include "moequant/modules/moe_experts.h"
#include "moequant/modules/quant_module.h"
#include "moequant/modules/sequential_experts.h"

#ifdef MOEQUANT_HAS_NCCL
#include "moequant/dist/nccl_communicator.h"
#endif
