// mq_cpu_quantize_batched: the per-matrix CPU quantizers over a list of items.
//
// Each item runs the per-matrix function of its format, so the bytes are those of that function
// by construction. Many small items (an expert stack) run in parallel over items with each
// item's function on one thread (the nested OpenMP region is inactive); few items run one after
// another, each parallel inside as usual. Errors are reported for the lowest failing item,
// whatever thread met it (mq_last_error() is per thread, so the message is carried over).
#include <stdint.h>

#include <string>
#include <vector>

#include "moequant/kernels/kernels.h"
#include "multiversion.h"
#include "op_args.h"
#include "status.h"

namespace {

using moequant::kernels::check_quantize_batched_args;
using moequant::kernels::format_name;
using moequant::kernels::raw_value;
using moequant::kernels::set_error;

mq_status quantize_item(mq_format format, mq_dtype dtype, const mq_quant_item& it) {
  switch (format) {
    case MQ_FORMAT_FP8:
      return mq_cpu_quantize_fp8(it.w, dtype, it.rows, it.cols, &it.scale, 0,
                                 static_cast<uint8_t*>(it.out));
    case MQ_FORMAT_NVFP4:
      return mq_cpu_quantize_nvfp4(it.w, dtype, it.rows, it.cols, it.scale,
                                   static_cast<uint8_t*>(it.out), static_cast<uint8_t*>(it.scales));
    case MQ_FORMAT_FP8_BLOCK:
      return mq_cpu_quantize_fp8_block(it.w, dtype, it.rows, it.cols, static_cast<uint8_t*>(it.out),
                                       static_cast<float*>(it.scales));
    case MQ_FORMAT_INT4:
      return mq_cpu_quantize_int4(it.w, dtype, it.rows, it.cols, static_cast<int32_t*>(it.out),
                                  static_cast<uint16_t*>(it.scales), it.qzeros, it.g_idx);
  }
  return MQ_ERR_INVALID;  // unreachable: the format was checked
}

}  // namespace

extern "C" mq_status mq_cpu_quantize_batched(mq_format format, mq_dtype dtype,
                                             const mq_quant_item* items, int32_t n) {
  const char* fn = "mq_cpu_quantize_batched";
  MQ_KRETURN_IF_ERROR(check_quantize_batched_args(fn, format, dtype, items, n));
  std::vector<mq_status> status(static_cast<size_t>(n), MQ_OK);
  std::vector<std::string> message(static_cast<size_t>(n));
  const auto run = [&](int32_t i) {
    status[static_cast<size_t>(i)] = quantize_item(format, dtype, items[i]);
    if (status[static_cast<size_t>(i)] != MQ_OK) message[static_cast<size_t>(i)] = mq_last_error();
  };
  if (n >= 2 * moequant::kernels::max_threads()) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int32_t i = 0; i < n; ++i) run(i);
  } else {
    for (int32_t i = 0; i < n; ++i) run(i);
  }
  for (int32_t i = 0; i < n; ++i) {
    if (status[static_cast<size_t>(i)] == MQ_OK) continue;
    return set_error(status[static_cast<size_t>(i)],
                     std::string(fn) + ": item " + std::to_string(i) + " (" +
                         format_name(raw_value(format)) + "): " + message[static_cast<size_t>(i)]);
  }
  return MQ_OK;
}
