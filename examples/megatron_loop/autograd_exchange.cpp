#include "autograd_exchange.h"

#include <torch/csrc/autograd/custom_function.h>

#include "row_exchange.h"

namespace loop {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What a backward needs to know about its forward: the group and the row counts. Held in the
// autograd context as a capsule (the context stores IValues only).
struct ExchangePlan : torch::CustomClassHolder {
  ExchangePlan(Communicator* c, std::vector<int64_t> a, std::vector<int64_t> b)
      : comm(c), first(std::move(a)), second(std::move(b)) {}
  Communicator* comm;
  std::vector<int64_t> first;   // send rows (all-to-all) or rows per rank (gather, scatter)
  std::vector<int64_t> second;  // receive rows (all-to-all)
};

c10::intrusive_ptr<ExchangePlan> plan_of(AutogradContext* ctx) {
  return c10::static_intrusive_pointer_cast<ExchangePlan>(ctx->saved_data["plan"].toCapsule());
}

struct AllToAllFn : torch::autograd::Function<AllToAllFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x,
                            c10::intrusive_ptr<ExchangePlan> plan) {
    ctx->saved_data["plan"] = c10::IValue::make_capsule(plan);
    return all_to_all_rows(*plan->comm, x, plan->first, plan->second);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto plan = plan_of(ctx);
    return {all_to_all_rows(*plan->comm, grads[0], plan->second, plan->first), at::Tensor()};
  }
};

struct GatherFn : torch::autograd::Function<GatherFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x,
                            c10::intrusive_ptr<ExchangePlan> plan) {
    ctx->saved_data["plan"] = c10::IValue::make_capsule(plan);
    return all_gather_rows(*plan->comm, x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto plan = plan_of(ctx);
    return {reduce_scatter_rows(*plan->comm, grads[0], plan->first), at::Tensor()};
  }
};

struct ReduceScatterFn : torch::autograd::Function<ReduceScatterFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x,
                            c10::intrusive_ptr<ExchangePlan> plan) {
    ctx->saved_data["plan"] = c10::IValue::make_capsule(plan);
    return reduce_scatter_rows(*plan->comm, x, plan->first);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto plan = plan_of(ctx);
    return {all_gather_rows(*plan->comm, grads[0]), at::Tensor()};
  }
};

}  // namespace

at::Tensor dispatch_rows(Communicator& comm, const at::Tensor& x,
                         const std::vector<int64_t>& send_rows,
                         const std::vector<int64_t>& recv_rows) {
  if (comm.size() == 1) return x;  // the same on every member: no rank skips alone
  return AllToAllFn::apply(x, c10::make_intrusive<ExchangePlan>(&comm, send_rows, recv_rows));
}

at::Tensor gather_rows(Communicator& comm, const at::Tensor& x, const std::vector<int64_t>& rows) {
  if (comm.size() == 1) return x;
  return GatherFn::apply(x, c10::make_intrusive<ExchangePlan>(&comm, rows, rows));
}

at::Tensor reduce_scatter_sum(Communicator& comm, const at::Tensor& x,
                              const std::vector<int64_t>& rows) {
  if (comm.size() == 1) return x;
  return ReduceScatterFn::apply(x, c10::make_intrusive<ExchangePlan>(&comm, rows, rows));
}

}  // namespace loop
