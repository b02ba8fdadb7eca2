#include "moequant/core/multi_amax.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <map>

#include "kernel_bridge.h"
#include "moequant/common/error.h"

namespace moequant {

namespace {

// Runs the tasks that live on one device with one kernel-API call and merges into `slots`.
void run_on_device(const std::vector<const AmaxTask*>& tasks, std::vector<float>& slots) {
  const at::Tensor& first = tasks.front()->tensor;
  c10::DeviceGuard guard(first.device());
  const bool cuda = use_cuda_kernels(first);

  std::vector<at::Tensor> keep_alive;  // contiguous copies must outlive the launch
  std::vector<mq_amax_item> items;
  keep_alive.reserve(tasks.size());
  items.reserve(tasks.size());
  for (const AmaxTask* t : tasks) {
    at::Tensor c = t->tensor.contiguous();
    keep_alive.push_back(c);
    mq_amax_item item;
    item.data = c.data_ptr();
    item.dtype = kernel_dtype(c, t->what);
    item.per_channel = t->per_channel ? 1 : 0;
    item.rows = t->per_channel ? (c.dim() == 0 ? 1 : c.size(0)) : 1;
    item.cols = item.rows == 0 ? 0 : c.numel() / std::max<int64_t>(item.rows, 1);
    item.slot = static_cast<int32_t>(t->slot);
    items.push_back(item);
  }

  const auto n = static_cast<int32_t>(items.size());
  at::Tensor local =
      at::zeros({static_cast<int64_t>(slots.size())}, first.options().dtype(at::kFloat));
  at::Tensor bad = at::zeros({n}, first.options().dtype(at::kInt));
  MQ_CHECK_KERNEL(
      cuda ? mq_cuda_multi_amax(items.data(), n, local.data_ptr<float>(), bad.data_ptr<int32_t>(),
                                kernel_stream(first))
           : mq_cpu_multi_amax(items.data(), n, local.data_ptr<float>(), bad.data_ptr<int32_t>()),
      "amax calibration of ", n, " tensors");

  const at::Tensor bad_host = bad.to(at::kCPU);
  std::string nonfinite;
  int listed = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (bad_host.data_ptr<int32_t>()[i] == 0) continue;
    if (listed++ < 8) nonfinite += (listed > 1 ? ", " : "") + ("'" + tasks[i]->what + "'");
  }
  MQ_CHECK(listed == 0, "NaN or Inf in ", listed, " tensor(s): ", nonfinite,
           listed > 8 ? ", ..." : "");

  const at::Tensor host = local.to(at::kCPU);
  const float* v = host.data_ptr<float>();
  for (size_t s = 0; s < slots.size(); ++s) slots[s] = std::max(slots[s], v[s]);
}

}  // namespace

void multi_amax(const std::vector<AmaxTask>& tasks, std::vector<float>& slots) {
  std::map<std::string, std::vector<const AmaxTask*>> by_device;
  for (const AmaxTask& t : tasks) {
    MQ_CHECK(t.tensor.defined(), t.what, ": tensor is undefined");
    const size_t need = t.slot + (t.per_channel ? static_cast<size_t>(t.tensor.size(0)) : 1);
    MQ_CHECK(need <= slots.size(), t.what, ": amax slot ", t.slot, " out of range");
    by_device[t.tensor.device().str()].push_back(&t);
  }
  for (auto& entry : by_device) run_on_device(entry.second, slots);
}

void check_finite(const at::Tensor& t, const std::string& what) {
  std::vector<float> slot(1, 0.0f);
  multi_amax({AmaxTask{t, false, 0, what}}, slot);
}

}  // namespace moequant
