// The NCCL backend as a world of one (the only NCCL world a single-GPU machine allows): init,
// every collective on host and device buffers, split, ProcessGroups, amax sync, abort.
// Skips when no GPU is visible.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "moequant/common/error.h"
#include "moequant/parallel/amax_sync.h"
#include "moequant/parallel/bootstrap.h"
#include "moequant/parallel/error_agreement.h"
#include "moequant/parallel/nccl_communicator.h"

namespace moequant::parallel::testing {
namespace {

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

TEST(NcclWorldOfOne, EverythingRunsThroughNccl) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  auto world = bootstrap_world(DeviceKind::kCuda);  // launched alone: an NCCL world of one
  ASSERT_EQ(std::string(world->backend()), "nccl");
  EXPECT_EQ(world->size(), 1);
  EXPECT_TRUE(world->supports_device_buffers());

  float f[3] = {1.0f, -1.0f, 2.5f};
  world->all_reduce_max(f, 3);
  EXPECT_EQ(f[1], -1.0f);
  EXPECT_EQ(f[2], 2.5f);
  int64_t s[2] = {3, 4};
  world->all_reduce_sum(s, 2);
  EXPECT_EQ(s[1], 4);
  char msg[] = "hello";
  world->broadcast(msg, sizeof(msg), 0);
  EXPECT_STREQ(msg, "hello");
  EXPECT_EQ(world->all_gather_bytes("abc"), std::vector<std::string>{"abc"});
  EXPECT_EQ(world->all_gather_bytes(""), std::vector<std::string>{""});
  world->barrier();

  float* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, 4 * sizeof(float)), cudaSuccess);
  const float host[4] = {0.5f, 4.0f, -1.0f, 3.0f};
  cudaMemcpy(dev, host, sizeof(host), cudaMemcpyHostToDevice);
  world->all_reduce_max_device(dev, 4);
  float back[4] = {};
  cudaMemcpy(back, dev, sizeof(back), cudaMemcpyDeviceToHost);
  EXPECT_EQ(back[1], 4.0f);
  cudaFree(dev);

  auto sub = world->split(0, 0, "EP");
  EXPECT_EQ(std::string(sub->backend()), "nccl");
  EXPECT_EQ(sub->name(), "EP");
  sub->barrier();
  agree_on_error(*sub, "");
  EXPECT_EQ(world->collective_count(), 8u);

  ProcessGroups groups =
      ProcessGroups::split_from(std::move(world), ParallelState(1, 0, ParallelSizes{}));
  std::vector<float> a{1.0f}, u{kUncalibratedAmax};
  const auto r =
      sync_amax({{"a", &a, group_bit(Group::kEP)}, {"u", &u, group_bit(Group::kEP)}}, groups);
  EXPECT_EQ(r.uncalibrated, std::vector<std::string>{"u"});

  sub->abort();
  EXPECT_TRUE(sub->failed());
  try {
    sub->barrier();
    FAIL() << "an aborted communicator must refuse work";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unusable"), std::string::npos) << e.what();
  }
}

TEST(NcclWorldOfOne, SplitChildOutlivesParent) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  std::unique_ptr<Communicator> child;
  {
    auto world = bootstrap_world(DeviceKind::kCuda);
    child = world->split(0, 0, "TP");
  }
  float x = 1.0f;
  child->all_reduce_max(&x, 1);
  EXPECT_EQ(x, 1.0f);
}

// A stream held up by a slow host callback stands in for a stalled peer: the deadline must fire,
// the communicator be aborted (ncclCommAbort) and the error name the group and the operation.
// (Here the collective never started, so ncclCommAbort returns only once the callback ahead of
// it is done; with a real stalled peer it stops the waiting kernel at once.)
TEST(NcclWorldOfOne, DeadlineAbortsTheCommunicator) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  auto world = bootstrap_world(DeviceKind::kCuda);
  world->set_timeout(std::chrono::milliseconds(500));
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  float* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, sizeof(float)), cudaSuccess);
  ASSERT_EQ(
      cudaLaunchHostFunc(
          stream, [](void*) { std::this_thread::sleep_for(std::chrono::seconds(2)); }, nullptr),
      cudaSuccess);
  const auto t0 = std::chrono::steady_clock::now();
  std::string err;
  try {
    world->all_reduce_max_device(dev, 1, stream);
  } catch (const Error& e) {
    err = e.what();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(err,
            "WORLD all_reduce_max_device timed out after 0.5 s on rank 0 (a peer died or stalled)");
  EXPECT_GE(s, 0.5);
  EXPECT_LT(s, 3.5);
  EXPECT_TRUE(world->failed());
  cudaStreamSynchronize(stream);
  cudaFree(dev);
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace moequant::parallel::testing
