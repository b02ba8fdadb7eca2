// The CUDA kernels against the CPU path, byte for byte.
//
// Every test draws fresh random inputs (the seed is printed on failure), runs mq_cpu_* on the
// host and mq_cuda_* on the device and compares every output byte. Device outputs are written
// twice, over two different poison patterns: a byte the kernel failed to write differs between
// the runs. Guard bytes after each output must stay poisoned. Without a CUDA device every test
// is skipped.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"

namespace {

namespace num = moequant::num;

#define SKIP_WITHOUT_GPU()                                          \
  do {                                                              \
    if (mq_cuda_available() == 0) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

#define CUDA_OK(call) ASSERT_EQ(cudaSuccess, (call)) << #call

#define MQ_EXPECT_OK(call) ASSERT_EQ(MQ_OK, (call)) << #call << ": " << mq_last_error()

constexpr size_t kGuard = 64;  // poisoned bytes after every device output
constexpr uint8_t kPoisonA = 0xa5;
constexpr uint8_t kPoisonB = 0x5a;

int elem_size(mq_dtype d) {
  return d == MQ_DTYPE_F32 ? 4 : 2;
}
const char* dtype_name(mq_dtype d) {
  return d == MQ_DTYPE_BF16 ? "bf16" : (d == MQ_DTYPE_F16 ? "f16" : "f32");
}

// Fresh seed per test, shown with every failure of the test.
struct Seeded {
  uint64_t seed;
  std::mt19937_64 rng;
  Seeded()
      : seed((static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()),
        rng(seed) {}
  std::string trace() const { return "seed " + std::to_string(seed); }
};

// ---- device memory --------------------------------------------------------------------------

// cudaMalloc'd bytes: `offset` bytes of slack in front (to misalign on purpose), `size` bytes of
// payload, kGuard guard bytes after it.
class DeviceBuffer {
 public:
  DeviceBuffer(size_t size, size_t offset = 0) : size_(size), offset_(offset) {
    if (cudaMalloc(&base_, offset + size + kGuard) != cudaSuccess) base_ = nullptr;
  }
  ~DeviceBuffer() {
    if (base_) cudaFree(base_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  bool ok() const { return base_ != nullptr; }
  template <typename T = void>
  T* get() const {
    return reinterpret_cast<T*>(static_cast<unsigned char*>(base_) + offset_);
  }
  size_t size() const { return size_; }
  void poison(uint8_t v) const { cudaMemset(base_, v, offset_ + size_ + kGuard); }
  void upload(const void* src) const { cudaMemcpy(get(), src, size_, cudaMemcpyHostToDevice); }
  // Payload followed by the guard bytes.
  std::vector<uint8_t> download_with_guard() const {
    std::vector<uint8_t> h(size_ + kGuard);
    cudaMemcpy(h.data(), get(), h.size(), cudaMemcpyDeviceToHost);
    return h;
  }

 private:
  void* base_ = nullptr;
  size_t size_;
  size_t offset_;
};

// Index of the first differing byte, or -1.
int64_t first_diff(const uint8_t* a, const uint8_t* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  }
  return -1;
}

// Checks one device output against the CPU's bytes: the two poisoned runs agree (all written),
// the payload equals `expected`, the guard is untouched.
void expect_output(const char* what, const std::vector<uint8_t>& run_a,
                   const std::vector<uint8_t>& run_b, const void* expected, size_t size) {
  ASSERT_EQ(run_a.size(), size + kGuard);
  const int64_t unwritten = first_diff(run_a.data(), run_b.data(), size);
  EXPECT_EQ(unwritten, -1) << what << ": byte " << unwritten << " of " << size
                           << " was not written by the kernel";
  const int64_t diff = first_diff(run_a.data(), static_cast<const uint8_t*>(expected), size);
  EXPECT_EQ(diff, -1) << what << ": byte " << diff << " of " << size << " differs: gpu 0x"
                      << std::hex << (diff >= 0 ? int{run_a[static_cast<size_t>(diff)]} : 0)
                      << " cpu 0x"
                      << (diff >= 0 ? int{static_cast<const uint8_t*>(expected)[diff]} : 0);
  for (size_t i = size; i < size + kGuard; ++i) {
    if (run_a[i] != kPoisonA || run_b[i] != kPoisonB) {
      ADD_FAILURE() << what << ": guard byte " << (i - size) << " after the output was written";
      break;
    }
  }
}

// float32 outputs: equal bits, or both NaN (NaN payloads differ between CPU and GPU multiplies).
void expect_floats(const char* what, const std::vector<uint8_t>& gpu,
                   const std::vector<float>& cpu) {
  ASSERT_GE(gpu.size(), cpu.size() * 4);
  for (size_t i = 0; i < cpu.size(); ++i) {
    float g;
    std::memcpy(&g, gpu.data() + 4 * i, 4);
    const bool same = std::memcmp(&g, &cpu[i], 4) == 0 || (std::isnan(g) && std::isnan(cpu[i]));
    if (!same) {
      ADD_FAILURE() << what << ": element " << i << " of " << cpu.size() << ": gpu " << g << " cpu "
                    << cpu[i];
      return;
    }
  }
}

// ---- inputs ---------------------------------------------------------------------------------

enum class Kind {
  kNormal,     // N(0, sigma), sigma drawn per tensor
  kHeavy,      // normal times a log-normal factor: heavy tails, values over many binades
  kTiesGrid,   // k/8 with |k| <= 56 and +-7 opening every row: amax 7, so fp8 scales are 2^-6
               // and int4 scales 1.0, and many quotients fall exactly halfway between codes
  kTiesBlock,  // per 16-block c*t, c a power of two, t on the e2m1 grid and its midpoints, one
               // +-6c per block: with scale2 a power of two every nvfp4 quotient is exact
  kRange,      // per row a magnitude 2^E, E anywhere in the dtype's range (subnormals too), its
               // elements +-[1, 2) * 2^(E - [0, 20]) and some +-0: scales from 2^-150 to 2^120
  kRangeInt4,  // kRange with E <= 16, so no int4 scale overflows float16
};
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kNormal:
      return "normal";
    case Kind::kHeavy:
      return "heavy";
    case Kind::kTiesGrid:
      return "ties-grid";
    case Kind::kTiesBlock:
      return "ties-block";
    case Kind::kRange:
      return "range";
    case Kind::kRangeInt4:
      return "range-int4";
  }
  return "?";
}

// Raw bits of `v` in dtype d (bf16: top half; f16: round to nearest; f32: as is).
void store_value(mq_dtype d, float v, unsigned char* dst) {
  if (d == MQ_DTYPE_F32) {
    std::memcpy(dst, &v, 4);
    return;
  }
  uint16_t h;
  if (d == MQ_DTYPE_BF16) {
    h = static_cast<uint16_t>(num::float_bits(v) >> 16);
  } else if (!std::isfinite(v)) {
    h = static_cast<uint16_t>((std::signbit(v) ? 0x8000u : 0u) |
                              (std::isnan(v) ? 0x7e00u : 0x7c00u));
  } else {
    bool overflow = false;
    h = num::float_to_half(std::max(-60000.0f, std::min(60000.0f, v)), &overflow);
  }
  std::memcpy(dst, &h, 2);
}

std::vector<unsigned char> make_weights(std::mt19937_64& rng, mq_dtype d, int64_t rows,
                                        int64_t cols, Kind kind) {
  const int es = elem_size(d);
  std::vector<unsigned char> w(static_cast<size_t>(rows * cols * es));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float sigmas[] = {1e-3f, 0.02f, 1.0f, 30.0f};
  const float sigma = sigmas[rng() % 4];
  static const float kBlockGrid[] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f, 1.75f,
                                     2.0f, 2.5f,  3.0f, 3.5f,  4.0f, 5.0f,  6.0f};
  float c = 1.0f;
  int row_exp = 0;
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (int64_t i = 0; i < rows * cols; ++i) {
    float v = 0.0f;
    switch (kind) {
      case Kind::kNormal:
        v = sigma * normal(rng);
        break;
      case Kind::kHeavy:
        v = normal(rng) * std::exp(1.5f * normal(rng));
        break;
      case Kind::kTiesGrid:
        v = (i % cols == 0) ? ((rng() & 1) ? 7.0f : -7.0f)
                            : static_cast<float>(static_cast<int>(rng() % 113) - 56) / 8.0f;
        break;
      case Kind::kTiesBlock:
        if (i % 16 == 0) c = std::ldexp(1.0f, static_cast<int>(rng() % 7) - 4);
        v = (i % 16 == static_cast<int64_t>(rng() % 16) || i % 16 == 15)
                ? 6.0f * c
                : kBlockGrid[rng() % 15] * c;
        if (rng() & 1) v = -v;
        break;
      case Kind::kRange:
      case Kind::kRangeInt4: {
        if (i % cols == 0) {
          const int lo = d == MQ_DTYPE_F16 ? -24 : -133, hi = d == MQ_DTYPE_F16 ? 15 : 120;
          row_exp =
              lo + static_cast<int>(rng() % static_cast<uint64_t>(
                                                (kind == Kind::kRangeInt4 ? 16 : hi) - lo + 1));
        }
        const uint64_t r = rng();
        if (r % 32 == 0) {
          v = (r & 64) ? -0.0f : 0.0f;
        } else {
          v = std::ldexp(1.0f + unit(rng), row_exp - static_cast<int>(r % 21));
          if (r & 32) v = -v;
        }
        break;
      }
    }
    store_value(d, v, &w[static_cast<size_t>(i * es)]);
  }
  return w;
}

// Float value of element i of host weights.
float weight_at(const std::vector<unsigned char>& w, mq_dtype d, int64_t i) {
  if (d == MQ_DTYPE_F32) {
    float f;
    std::memcpy(&f, &w[static_cast<size_t>(i * 4)], 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, &w[static_cast<size_t>(i * 2)], 2);
  return d == MQ_DTYPE_BF16 ? num::bf16_to_float(h) : num::half_to_float(h);
}

float host_amax(const std::vector<unsigned char>& w, mq_dtype d, int64_t begin, int64_t end) {
  float m = 0.0f;
  for (int64_t i = begin; i < end; ++i) m = std::max(m, std::fabs(weight_at(w, d, i)));
  return m;
}

struct Shape {
  int64_t rows, cols;
};

const mq_dtype kDtypes[] = {MQ_DTYPE_BF16, MQ_DTYPE_F16, MQ_DTYPE_F32};

// ---- amax -----------------------------------------------------------------------------------

struct AmaxCase {
  std::vector<std::vector<unsigned char>> host_data;
  std::vector<mq_amax_item> items;  // host pointers
  std::vector<size_t> misalign;     // bytes added to each item's device pointer
  int32_t num_slots = 0;
  std::vector<float> initial_slots;
};

void add_item(AmaxCase* c, std::vector<unsigned char> data, int64_t rows, int64_t cols, mq_dtype d,
              int32_t slot, int32_t per_channel, size_t misalign) {
  c->host_data.push_back(std::move(data));
  c->items.push_back(mq_amax_item{c->host_data.back().data(), rows, cols, d, slot, per_channel});
  c->misalign.push_back(misalign);
  c->num_slots =
      std::max<int32_t>(c->num_slots, slot + static_cast<int32_t>(per_channel ? rows : 1));
}

// Runs the case on CPU and GPU (twice, over two poisons for nonfinite/slots) and compares.
void run_amax_case(AmaxCase* c, std::mt19937_64& rng, cudaStream_t stream = nullptr) {
  // host data pointers may have moved while the vector grew: refresh them
  for (size_t i = 0; i < c->items.size(); ++i) c->items[i].data = c->host_data[i].data();
  const int32_t n = static_cast<int32_t>(c->items.size());
  if (c->initial_slots.empty()) {
    std::uniform_real_distribution<float> u(0.0f, 2.0f);
    c->initial_slots.resize(static_cast<size_t>(c->num_slots));
    for (float& s : c->initial_slots) s = (rng() % 3 == 0) ? u(rng) : 0.0f;
  }
  std::vector<float> cpu_slots = c->initial_slots;
  std::vector<int32_t> cpu_flags(static_cast<size_t>(n), 0);
  MQ_EXPECT_OK(mq_cpu_multi_amax(c->items.data(), n, cpu_slots.data(), cpu_flags.data()));

  // One device allocation per item keeps each misalignment independent.
  std::vector<std::unique_ptr<DeviceBuffer>> bufs;
  std::vector<mq_amax_item> dev_items = c->items;
  for (int32_t i = 0; i < n; ++i) {
    const size_t bytes = c->host_data[static_cast<size_t>(i)].size();
    bufs.push_back(std::make_unique<DeviceBuffer>(bytes, c->misalign[static_cast<size_t>(i)]));
    ASSERT_TRUE(bufs.back()->ok());
    bufs.back()->poison(0xff);  // NaN patterns around every tensor: reading past it shows
    if (bytes) bufs.back()->upload(c->host_data[static_cast<size_t>(i)].data());
    dev_items[static_cast<size_t>(i)].data = bytes ? bufs.back()->get() : nullptr;
  }
  DeviceBuffer slots(c->initial_slots.size() * 4), flags(static_cast<size_t>(n) * 4);
  ASSERT_TRUE(slots.ok() && flags.ok());
  slots.upload(c->initial_slots.data());
  CUDA_OK(cudaMemset(flags.get(), 0, flags.size()));
  MQ_EXPECT_OK(mq_cuda_multi_amax(dev_items.data(), n, slots.get<float>(), flags.get<int32_t>(),
                                  reinterpret_cast<mq_stream_t>(stream)));
  CUDA_OK(cudaStreamSynchronize(stream));
  CUDA_OK(cudaGetLastError());
  std::vector<float> gpu_slots(c->initial_slots.size());
  std::vector<int32_t> gpu_flags(static_cast<size_t>(n));
  CUDA_OK(cudaMemcpy(gpu_slots.data(), slots.get(), slots.size(), cudaMemcpyDeviceToHost));
  CUDA_OK(cudaMemcpy(gpu_flags.data(), flags.get(), flags.size(), cudaMemcpyDeviceToHost));
  for (size_t s = 0; s < gpu_slots.size(); ++s) {
    EXPECT_EQ(num::float_bits(gpu_slots[s]), num::float_bits(cpu_slots[s]))
        << "slot " << s << ": gpu " << gpu_slots[s] << " cpu " << cpu_slots[s];
  }
  for (int32_t i = 0; i < n; ++i) {
    EXPECT_EQ(gpu_flags[static_cast<size_t>(i)], cpu_flags[static_cast<size_t>(i)])
        << "nonfinite flag of item " << i;
  }
}

TEST(GpuAmax, MixedItemsSharingSlots) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  AmaxCase c;
  int32_t next_slot = 8;  // slots 0..7 are shared by per-tensor items
  for (int i = 0; i < 60; ++i) {
    const mq_dtype d = kDtypes[s.rng() % 3];
    const int64_t rows = static_cast<int64_t>(s.rng() % 200);
    const int64_t cols = static_cast<int64_t>(s.rng() % 1500);
    const Kind kind = (s.rng() & 1) ? Kind::kNormal : Kind::kHeavy;
    const bool per_channel = s.rng() % 3 == 0;
    const size_t misalign = (s.rng() & 1) ? static_cast<size_t>(elem_size(d)) * (s.rng() % 8) : 0;
    int32_t slot = static_cast<int32_t>(s.rng() % 8);
    if (per_channel) {
      slot = next_slot;
      next_slot += static_cast<int32_t>(rows);
    }
    add_item(&c, make_weights(s.rng, d, rows, cols, kind), rows, cols, d, slot, per_channel,
             misalign);
  }
  run_amax_case(&c, s.rng);
}

TEST(GpuAmax, PerRowShortAndLongRows) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  const Shape shapes[] = {{20000, 1}, {5000, 3},  {3000, 7}, {1000, 8},
                          {700, 100}, {4, 20000}, {3, 5000}, {2, 100000}};
  for (const mq_dtype d : kDtypes) {
    SCOPED_TRACE(dtype_name(d));
    AmaxCase c;
    int32_t slot = 0;
    for (const Shape& sh : shapes) {
      const size_t misalign = (s.rng() & 1) ? static_cast<size_t>(elem_size(d)) : 0;
      add_item(&c, make_weights(s.rng, d, sh.rows, sh.cols, Kind::kHeavy), sh.rows, sh.cols, d,
               slot, 1, misalign);
      slot += static_cast<int32_t>(sh.rows);
    }
    // per-channel items sharing the same rows of slots (several experts, one quantizer)
    add_item(&c, make_weights(s.rng, d, 700, 100, Kind::kNormal), 700, 100, d,
             20000 + 5000 + 3000 + 1000, 1, 0);
    run_amax_case(&c, s.rng);
  }
}

TEST(GpuAmax, TinyEmptyAndSingleElementItems) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  AmaxCase c;
  for (const mq_dtype d : kDtypes) {
    add_item(&c, make_weights(s.rng, d, 1, 1, Kind::kNormal), 1, 1, d, 0, 0, 0);
    add_item(&c, make_weights(s.rng, d, 1, 1, Kind::kNormal), 1, 1, d, 1, 0,
             static_cast<size_t>(elem_size(d)));
    add_item(&c, {}, 0, 5, d, 2, 0, 0);
    add_item(&c, {}, 5, 0, d, 3, 1, 0);
    // 3 elements off a 16-byte boundary (a tensor's data is always aligned to its element size;
    // mq_cuda_multi_amax refuses anything else, see RejectsBadArguments)
    add_item(&c, make_weights(s.rng, d, 1, 9, Kind::kHeavy), 1, 9, d, 2, 0,
             3 * static_cast<size_t>(elem_size(d)));
    add_item(&c, make_weights(s.rng, d, 3, 1, Kind::kHeavy), 3, 1, d, 10, 1, 0);
  }
  run_amax_case(&c, s.rng);
  // No items at all is a no-op.
  MQ_EXPECT_OK(mq_cuda_multi_amax(nullptr, 0, nullptr, nullptr, nullptr));
}

TEST(GpuAmax, LargeTensorsSpanManyBlocks) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  AmaxCase c;
  add_item(&c, make_weights(s.rng, MQ_DTYPE_BF16, 3000, 4096, Kind::kHeavy), 3000, 4096,
           MQ_DTYPE_BF16, 0, 0, 0);
  add_item(&c, make_weights(s.rng, MQ_DTYPE_F32, 1000, 5000, Kind::kNormal), 1000, 5000,
           MQ_DTYPE_F32, 1, 1, 4);
  add_item(&c, make_weights(s.rng, MQ_DTYPE_F16, 777, 1235, Kind::kHeavy), 777, 1235, MQ_DTYPE_F16,
           0, 0, 2);
  for (int e = 0; e < 64; ++e) {  // experts of two projections sharing two slots
    add_item(&c, make_weights(s.rng, MQ_DTYPE_BF16, 96, 256, Kind::kNormal), 96, 256, MQ_DTYPE_BF16,
             1001 + e % 2, 0, (e % 3 == 0) ? 2 : 0);
  }
  run_amax_case(&c, s.rng);
}

TEST(GpuAmax, NonFiniteFlaggedPerItem) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  for (const mq_dtype d : kDtypes) {
    SCOPED_TRACE(dtype_name(d));
    AmaxCase c;
    const float specials[] = {NAN, INFINITY, -INFINITY, -NAN};
    for (int i = 0; i < 24; ++i) {
      const int64_t rows = 1 + static_cast<int64_t>(s.rng() % 64);
      const int64_t cols = 1 + static_cast<int64_t>(s.rng() % 700);
      std::vector<unsigned char> w = make_weights(s.rng, d, rows, cols, Kind::kNormal);
      if (i % 2 == 0) {  // every other item gets one special value: first, last or anywhere
        const int64_t n = rows * cols;
        const int64_t pos =
            i % 6 == 0 ? 0 : (i % 6 == 2 ? n - 1 : static_cast<int64_t>(s.rng() % n));
        store_value(d, specials[s.rng() % 4], &w[static_cast<size_t>(pos * elem_size(d))]);
      }
      const int32_t per_channel = i % 4 == 1 || i % 4 == 2;
      add_item(&c, std::move(w), rows, cols, d, per_channel ? 100 + 64 * i : i % 3, per_channel,
               (s.rng() & 1) ? static_cast<size_t>(elem_size(d)) : 0);
    }
    run_amax_case(&c, s.rng);
  }
}

TEST(GpuAmax, StreamsAndRepeatedCallsReuseScratch) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  cudaStream_t streams[2];
  CUDA_OK(cudaStreamCreateWithFlags(&streams[0], cudaStreamNonBlocking));
  CUDA_OK(cudaStreamCreateWithFlags(&streams[1], cudaStreamNonBlocking));
  for (int round = 0; round < 6; ++round) {
    AmaxCase c;
    const int items = 1 + round * 50;  // growing lists force the scratch to grow
    for (int i = 0; i < items; ++i) {
      const mq_dtype d = kDtypes[s.rng() % 3];
      const int64_t rows = 1 + static_cast<int64_t>(s.rng() % 40);
      const int64_t cols = 1 + static_cast<int64_t>(s.rng() % 300);
      add_item(&c, make_weights(s.rng, d, rows, cols, Kind::kHeavy), rows, cols, d, i % 5, 0, 0);
    }
    run_amax_case(&c, s.rng, streams[round % 2]);
  }
  CUDA_OK(cudaStreamDestroy(streams[0]));
  CUDA_OK(cudaStreamDestroy(streams[1]));
}

TEST(GpuAmax, RejectsBadArguments) {
  SKIP_WITHOUT_GPU();
  DeviceBuffer buf(64, 2), slots(16), flags(16);
  mq_amax_item it{buf.get(), 2, 2, MQ_DTYPE_F32, 0, 0};  // f32 data 2 bytes off: misaligned
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_multi_amax(&it, 1, slots.get<float>(), flags.get<int32_t>(), nullptr));
  it.dtype = MQ_DTYPE_BF16;
  it.slot = -1;
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_multi_amax(&it, 1, slots.get<float>(), flags.get<int32_t>(), nullptr));
  it.slot = 0;
  EXPECT_EQ(MQ_ERR_INVALID, mq_cuda_multi_amax(&it, 1, nullptr, flags.get<int32_t>(), nullptr));
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_multi_amax(&it, -1, slots.get<float>(), flags.get<int32_t>(), nullptr));
  EXPECT_NE(std::string(mq_last_error()).find("mq_cuda_multi_amax"), std::string::npos);
}

// ---- quantize -------------------------------------------------------------------------------

struct QuantCase {
  mq_dtype dtype;
  int64_t rows, cols;
  Kind kind;
  size_t in_offset;   // bytes added to the input pointer
  size_t out_offset;  // bytes added to the output pointers
};

std::string describe(const QuantCase& q) {
  return std::string(dtype_name(q.dtype)) + " [" + std::to_string(q.rows) + ", " +
         std::to_string(q.cols) + "] " + kind_name(q.kind) + " in+" + std::to_string(q.in_offset) +
         " out+" + std::to_string(q.out_offset);
}

// The device input for a case.
std::unique_ptr<DeviceBuffer> upload_weights(const std::vector<unsigned char>& w, size_t offset) {
  auto b = std::make_unique<DeviceBuffer>(w.size(), offset);
  if (b->ok()) {
    b->poison(0xff);
    b->upload(w.data());
  }
  return b;
}

// Runs `launch` twice over poisoned outputs and returns both downloads of each output.
template <typename Launch>
void run_twice(const std::vector<DeviceBuffer*>& outs, Launch&& launch,
               std::vector<std::vector<uint8_t>>* run_a, std::vector<std::vector<uint8_t>>* run_b) {
  for (int run = 0; run < 2; ++run) {
    for (DeviceBuffer* o : outs) o->poison(run == 0 ? kPoisonA : kPoisonB);
    ASSERT_EQ(MQ_OK, launch()) << mq_last_error();
    ASSERT_EQ(cudaSuccess, cudaDeviceSynchronize());
    for (DeviceBuffer* o : outs) (run == 0 ? run_a : run_b)->push_back(o->download_with_guard());
  }
}

// A scale off its amax rule: times 2^[-span, span], or (1 in 8) one of the edges of the fast
// path's range or a negative value: the bytes must still match the CPU's. (Not 0: -0.0 / 0 is
// a NaN whose sign differs between x86 and the GPU, in the exact path too.)
float jitter_scale(float scale, int span, std::mt19937_64& rng) {
  static const float kEdges[] = {0x1p-60f,
                                 0x1.000002p-60f,
                                 0x1.fffffep-61f,
                                 0x1p60f,
                                 0x1.fffffep59f,
                                 0x1.000002p60f,
                                 0x1p-126f,
                                 0x1p-149f,
                                 3.0e38f,
                                 -1.0f,
                                 1.0f};
  if (rng() % 8 == 0) return kEdges[rng() % (sizeof kEdges / sizeof kEdges[0])];
  const float v =
      std::ldexp(scale, static_cast<int>(rng() % static_cast<uint64_t>(2 * span + 1)) - span);
  return v == 0.0f ? 0x1p-149f : v;  // an underflow to 0 would make the scale invalid
}

void check_fp8(const QuantCase& q, int32_t per_row, std::mt19937_64& rng, int scale_span = 0) {
  SCOPED_TRACE(describe(q) + (per_row ? " per-row" : " per-tensor") +
               (scale_span ? " scales 2^+-" + std::to_string(scale_span) : ""));
  const std::vector<unsigned char> w = make_weights(rng, q.dtype, q.rows, q.cols, q.kind);
  const int64_t n = q.rows * q.cols;
  std::vector<float> scales;
  if (per_row) {
    for (int64_t r = 0; r < q.rows; ++r) {
      scales.push_back(
          num::fp8_scale_from_amax(host_amax(w, q.dtype, r * q.cols, (r + 1) * q.cols)));
    }
  } else {
    scales.push_back(num::fp8_scale_from_amax(host_amax(w, q.dtype, 0, n)));
  }
  if (scale_span > 0) {
    for (float& sc : scales) sc = jitter_scale(sc, scale_span, rng);
  }
  std::vector<uint8_t> cpu(static_cast<size_t>(n));
  MQ_EXPECT_OK(
      mq_cpu_quantize_fp8(w.data(), q.dtype, q.rows, q.cols, scales.data(), per_row, cpu.data()));
  auto dw = upload_weights(w, q.in_offset);
  DeviceBuffer ds(scales.size() * 4), out(static_cast<size_t>(n), q.out_offset);
  ASSERT_TRUE(dw->ok() && ds.ok() && out.ok());
  ds.upload(scales.data());
  std::vector<std::vector<uint8_t>> a, b;
  run_twice(
      {&out},
      [&] {
        return mq_cuda_quantize_fp8(dw->get(), q.dtype, q.rows, q.cols, ds.get<float>(), per_row,
                                    out.get<uint8_t>(), nullptr);
      },
      &a, &b);
  if (::testing::Test::HasFatalFailure()) return;
  expect_output("fp8", a[0], b[0], cpu.data(), cpu.size());
}

void check_nvfp4(const QuantCase& q, std::mt19937_64& rng, float scale2_override = 0.0f) {
  SCOPED_TRACE(describe(q) + (scale2_override > 0.0f
                                  ? " scale2 " + std::to_string(std::log2(scale2_override))
                                  : std::string()));
  const std::vector<unsigned char> w = make_weights(rng, q.dtype, q.rows, q.cols, q.kind);
  const int64_t n = q.rows * q.cols;
  // ties-block data needs a power-of-two scale2; otherwise the tensor's own
  const float scale2 = scale2_override > 0.0f ? scale2_override
                       : q.kind == Kind::kTiesBlock
                           ? 0.015625f
                           : num::nvfp4_scale2_from_amax(host_amax(w, q.dtype, 0, n));
  std::vector<uint8_t> cpu_packed(static_cast<size_t>(n / 2)),
      cpu_scales(static_cast<size_t>(n / 16));
  MQ_EXPECT_OK(mq_cpu_quantize_nvfp4(w.data(), q.dtype, q.rows, q.cols, scale2, cpu_packed.data(),
                                     cpu_scales.data()));
  auto dw = upload_weights(w, q.in_offset);
  DeviceBuffer packed(cpu_packed.size(), q.out_offset), bscales(cpu_scales.size(), q.out_offset);
  ASSERT_TRUE(dw->ok() && packed.ok() && bscales.ok());
  std::vector<std::vector<uint8_t>> a, b;
  run_twice(
      {&packed, &bscales},
      [&] {
        return mq_cuda_quantize_nvfp4(dw->get(), q.dtype, q.rows, q.cols, scale2,
                                      packed.get<uint8_t>(), bscales.get<uint8_t>(), nullptr);
      },
      &a, &b);
  if (::testing::Test::HasFatalFailure()) return;
  expect_output("nvfp4 packed", a[0], b[0], cpu_packed.data(), cpu_packed.size());
  expect_output("nvfp4 block scales", a[1], b[1], cpu_scales.data(), cpu_scales.size());
}

void check_fp8_block(const QuantCase& q, std::mt19937_64& rng) {
  SCOPED_TRACE(describe(q));
  const std::vector<unsigned char> w = make_weights(rng, q.dtype, q.rows, q.cols, q.kind);
  const int64_t n = q.rows * q.cols;
  const int64_t tiles = ((q.rows + 127) / 128) * ((q.cols + 127) / 128);
  std::vector<uint8_t> cpu(static_cast<size_t>(n));
  std::vector<float> cpu_scales(static_cast<size_t>(tiles));
  MQ_EXPECT_OK(
      mq_cpu_quantize_fp8_block(w.data(), q.dtype, q.rows, q.cols, cpu.data(), cpu_scales.data()));
  auto dw = upload_weights(w, q.in_offset);
  DeviceBuffer out(cpu.size(), q.out_offset), scales(cpu_scales.size() * 4);
  ASSERT_TRUE(dw->ok() && out.ok() && scales.ok());
  std::vector<std::vector<uint8_t>> a, b;
  run_twice(
      {&out, &scales},
      [&] {
        return mq_cuda_quantize_fp8_block(dw->get(), q.dtype, q.rows, q.cols, out.get<uint8_t>(),
                                          scales.get<float>(), nullptr);
      },
      &a, &b);
  if (::testing::Test::HasFatalFailure()) return;
  expect_output("fp8_block", a[0], b[0], cpu.data(), cpu.size());
  expect_output("fp8_block tile scales", a[1], b[1], cpu_scales.data(), cpu_scales.size() * 4);
}

void check_int4(const QuantCase& q, std::mt19937_64& rng) {
  SCOPED_TRACE(describe(q));
  const std::vector<unsigned char> w = make_weights(rng, q.dtype, q.rows, q.cols, q.kind);
  const int64_t groups = (q.cols + 127) / 128;
  std::vector<int32_t> cpu_q(static_cast<size_t>(q.cols / 8 * q.rows));
  std::vector<uint16_t> cpu_s(static_cast<size_t>(groups * q.rows));
  std::vector<int32_t> cpu_z(static_cast<size_t>(groups * q.rows / 8));
  std::vector<int32_t> cpu_g(static_cast<size_t>(q.cols));
  MQ_EXPECT_OK(mq_cpu_quantize_int4(w.data(), q.dtype, q.rows, q.cols, cpu_q.data(), cpu_s.data(),
                                    cpu_z.data(), cpu_g.data()));
  auto dw = upload_weights(w, q.in_offset);
  DeviceBuffer dq(cpu_q.size() * 4), ds(cpu_s.size() * 2), dz(cpu_z.size() * 4),
      dg(cpu_g.size() * 4);
  ASSERT_TRUE(dw->ok() && dq.ok() && ds.ok() && dz.ok() && dg.ok());
  std::vector<std::vector<uint8_t>> a, b;
  run_twice(
      {&dq, &ds, &dz, &dg},
      [&] {
        return mq_cuda_quantize_int4(dw->get(), q.dtype, q.rows, q.cols, dq.get<int32_t>(),
                                     ds.get<uint16_t>(), dz.get<int32_t>(), dg.get<int32_t>(),
                                     nullptr);
      },
      &a, &b);
  if (::testing::Test::HasFatalFailure()) return;
  expect_output("int4 qweight", a[0], b[0], cpu_q.data(), cpu_q.size() * 4);
  expect_output("int4 scales", a[1], b[1], cpu_s.data(), cpu_s.size() * 2);
  expect_output("int4 qzeros", a[2], b[2], cpu_z.data(), cpu_z.size() * 4);
  expect_output("int4 g_idx", a[3], b[3], cpu_g.data(), cpu_g.size() * 4);
}

const Kind kKinds[] = {Kind::kNormal, Kind::kHeavy, Kind::kTiesGrid, Kind::kTiesBlock};

TEST(GpuQuantize, Fp8PerTensorAndPerRow) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  const Shape shapes[] = {{1, 1},    {1, 300},   {7, 13},    {300, 7},
                          {1000, 1}, {130, 300}, {64, 2048}, {2048, 768}};
  for (const mq_dtype d : kDtypes) {
    for (const Shape& sh : shapes) {
      for (const Kind k : kKinds) {
        for (int32_t per_row = 0; per_row < 2; ++per_row) {
          check_fp8({d, sh.rows, sh.cols, k, 0, 0}, per_row, s.rng);
        }
      }
      check_fp8({d, sh.rows, sh.cols, Kind::kNormal, static_cast<size_t>(elem_size(d)), 0}, 0,
                s.rng);
      check_fp8({d, sh.rows, sh.cols, Kind::kHeavy, 0, 1}, 1, s.rng);
    }
  }
}

TEST(GpuQuantize, Nvfp4) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  const Shape shapes[] = {{1, 16}, {7, 48}, {3, 1008}, {130, 304}, {256, 2048}, {2048, 768}};
  for (const mq_dtype d : kDtypes) {
    for (const Shape& sh : shapes) {
      for (const Kind k : kKinds) check_nvfp4({d, sh.rows, sh.cols, k, 0, 0}, s.rng);
      check_nvfp4({d, sh.rows, sh.cols, Kind::kNormal, static_cast<size_t>(elem_size(d)), 0},
                  s.rng);
      check_nvfp4({d, sh.rows, sh.cols, Kind::kTiesBlock, 0, 1}, s.rng);
    }
  }
  // cols % 16 != 0 and bad scale2 are refused like the CPU path
  DeviceBuffer w(64), p(64), sc(64);
  EXPECT_EQ(MQ_ERR_INVALID, mq_cuda_quantize_nvfp4(w.get(), MQ_DTYPE_BF16, 2, 8, 1.0f,
                                                   p.get<uint8_t>(), sc.get<uint8_t>(), nullptr));
  EXPECT_EQ(MQ_ERR_INVALID, mq_cuda_quantize_nvfp4(w.get(), MQ_DTYPE_BF16, 1, 16, 0.0f,
                                                   p.get<uint8_t>(), sc.get<uint8_t>(), nullptr));
}

TEST(GpuQuantize, Fp8Block) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  const Shape shapes[] = {{1, 1},     {1, 300},    {128, 128},  {130, 300},
                          {257, 129}, {300, 1000}, {2048, 768}, {5, 13}};
  for (const mq_dtype d : kDtypes) {
    for (const Shape& sh : shapes) {
      for (const Kind k : kKinds) check_fp8_block({d, sh.rows, sh.cols, k, 0, 0}, s.rng);
      check_fp8_block({d, sh.rows, sh.cols, Kind::kHeavy, static_cast<size_t>(elem_size(d)), 0},
                      s.rng);
      check_fp8_block({d, sh.rows, sh.cols, Kind::kNormal, 0, 1}, s.rng);
    }
  }
}

TEST(GpuQuantize, Int4) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  const Shape shapes[] = {{8, 8},      {8, 136},    {136, 304}, {264, 1000},
                          {768, 2048}, {2048, 768}, {16, 1032}};
  for (const mq_dtype d : kDtypes) {
    for (const Shape& sh : shapes) {
      for (const Kind k : kKinds) check_int4({d, sh.rows, sh.cols, k, 0, 0}, s.rng);
      check_int4({d, sh.rows, sh.cols, Kind::kHeavy, static_cast<size_t>(elem_size(d)), 0}, s.rng);
    }
  }
}

// Inputs over the whole range of each dtype (subnormals, zeros of both signs) and scales far off
// their rule: the fast kernels' proven ranges end at 2^-60 / 2^60 divisors, 2^20 quotients and
// so on, and past them the exact path must take over without a byte changing.
TEST(GpuQuantize, ScalesAndValuesAcrossTheWholeRange) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  const float scale2s[] = {0x1p-75f, 0x1p-61f, 0x1p-45f, 0x1p-20f, 0.001f,
                           1.0f,     0x1p6f,   0x1p10f,  0x1p40f,  0x1p100f};
  for (const mq_dtype d : kDtypes) {
    for (int rep = 0; rep < 2; ++rep) {
      for (int32_t per_row = 0; per_row < 2; ++per_row) {
        check_fp8({d, 384, 1024, Kind::kRange, 0, 0}, per_row, s.rng);
        check_fp8({d, 384, 1024, Kind::kRange, 0, 0}, per_row, s.rng, 80);
        check_fp8({d, 384, 1024, Kind::kNormal, 0, 0}, per_row, s.rng, 70);
      }
      for (const float s2 : scale2s) check_nvfp4({d, 128, 1024, Kind::kRange, 0, 0}, s.rng, s2);
      check_nvfp4({d, 256, 1024, Kind::kRange, 0, 0}, s.rng);
      check_fp8_block({d, 1024, 640, Kind::kRange, 0, 0}, s.rng);
      check_int4({d, 384, 1024, Kind::kRangeInt4, 0, 0}, s.rng);
    }
  }
}

TEST(GpuQuantize, Int4ScaleOverflowIsRangeError) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  const int64_t rows = 16, cols = 256;
  std::vector<unsigned char> w = make_weights(s.rng, MQ_DTYPE_F32, rows, cols, Kind::kNormal);
  store_value(MQ_DTYPE_F32, 1e6f, &w[static_cast<size_t>((9 * cols + 200) * 4)]);  // row 9, group 1
  store_value(MQ_DTYPE_F32, -2e6f,
              &w[static_cast<size_t>((12 * cols + 3) * 4)]);  // row 12, group 0
  auto dw = upload_weights(w, 0);
  DeviceBuffer dq(cols / 8 * rows * 4), ds(2 * rows * 2), dz(2 * rows / 8 * 4), dg(cols * 4);
  EXPECT_EQ(MQ_ERR_RANGE, mq_cuda_quantize_int4(dw->get(), MQ_DTYPE_F32, rows, cols,
                                                dq.get<int32_t>(), ds.get<uint16_t>(),
                                                dz.get<int32_t>(), dg.get<int32_t>(), nullptr));
  const std::string msg = mq_last_error();
  EXPECT_NE(msg.find("row 9, group 1"), std::string::npos) << msg;  // the first failing group
  // and the next call on this thread succeeds (the flag was reset)
  std::vector<unsigned char> ok = make_weights(s.rng, MQ_DTYPE_F32, rows, cols, Kind::kNormal);
  dw->upload(ok.data());
  EXPECT_EQ(MQ_OK, mq_cuda_quantize_int4(dw->get(), MQ_DTYPE_F32, rows, cols, dq.get<int32_t>(),
                                         ds.get<uint16_t>(), dz.get<int32_t>(), dg.get<int32_t>(),
                                         nullptr))
      << mq_last_error();
}

// ---- batched quantize -----------------------------------------------------------------------
//
// Every batch runs three ways: the CPU per-matrix functions (the reference), the CUDA per-matrix
// functions one item at a time, and ONE mq_cuda_quantize_batched call; both device runs write
// over two poison patterns and every output byte must equal the CPU's, so batched == per-matrix
// == CPU.

const mq_format kFormats[] = {MQ_FORMAT_FP8, MQ_FORMAT_NVFP4, MQ_FORMAT_FP8_BLOCK, MQ_FORMAT_INT4};

const char* format_name(mq_format f) {
  switch (f) {
    case MQ_FORMAT_FP8:
      return "fp8";
    case MQ_FORMAT_NVFP4:
      return "nvfp4";
    case MQ_FORMAT_FP8_BLOCK:
      return "fp8_block";
    case MQ_FORMAT_INT4:
      return "int4";
  }
  return "?";
}

// Bytes of the outputs of one item: out, scales, qzeros, g_idx (0: unused).
std::vector<size_t> output_sizes(mq_format f, int64_t rows, int64_t cols) {
  const size_t n = static_cast<size_t>(rows * cols);
  const size_t tiles = static_cast<size_t>(((rows + 127) / 128) * ((cols + 127) / 128));
  const size_t groups = static_cast<size_t>((cols + 127) / 128), r = static_cast<size_t>(rows);
  switch (f) {
    case MQ_FORMAT_FP8:
      return {n, 0, 0, 0};
    case MQ_FORMAT_NVFP4:
      return {n / 2, n / 16, 0, 0};
    case MQ_FORMAT_FP8_BLOCK:
      return {n, tiles * 4, 0, 0};
    case MQ_FORMAT_INT4:
      return {n / 2, groups * r * 2, groups * r / 2, static_cast<size_t>(cols) * 4};
  }
  return {0, 0, 0, 0};
}

struct BatchItem {
  int64_t rows = 0, cols = 0;
  float scale = 1.0f;
  std::vector<unsigned char> w;
  std::vector<std::vector<uint8_t>> cpu;            // per output
  std::unique_ptr<DeviceBuffer> dw, dscale;         // input; fp8: the scale for the per-matrix call
  std::vector<std::unique_ptr<DeviceBuffer>> dout;  // per output (null when unused)
  void* out(size_t k) const { return dout[k] ? dout[k]->get() : nullptr; }
};

struct BatchSpec {
  Shape shape;
  Kind kind;
  size_t in_offset;    // bytes added to the input pointer (a multiple of the element size)
  size_t out_offset;   // bytes added to `out` (fp8, nvfp4: byte outputs)
  float scale = 0.0f;  // nvfp4 scale2 / fp8 scale override (0: from the data)
};

mq_status cpu_one(mq_format f, mq_dtype d, const mq_quant_item& it) {
  switch (f) {
    case MQ_FORMAT_FP8:
      return mq_cpu_quantize_fp8(it.w, d, it.rows, it.cols, &it.scale, 0,
                                 static_cast<uint8_t*>(it.out));
    case MQ_FORMAT_NVFP4:
      return mq_cpu_quantize_nvfp4(it.w, d, it.rows, it.cols, it.scale,
                                   static_cast<uint8_t*>(it.out), static_cast<uint8_t*>(it.scales));
    case MQ_FORMAT_FP8_BLOCK:
      return mq_cpu_quantize_fp8_block(it.w, d, it.rows, it.cols, static_cast<uint8_t*>(it.out),
                                       static_cast<float*>(it.scales));
    case MQ_FORMAT_INT4:
      return mq_cpu_quantize_int4(it.w, d, it.rows, it.cols, static_cast<int32_t*>(it.out),
                                  static_cast<uint16_t*>(it.scales), it.qzeros, it.g_idx);
  }
  return MQ_ERR_INVALID;
}

mq_status cuda_one(mq_format f, mq_dtype d, const BatchItem& b, const mq_quant_item& it,
                   cudaStream_t s) {
  const mq_stream_t ms = reinterpret_cast<mq_stream_t>(s);
  switch (f) {
    case MQ_FORMAT_FP8:
      return mq_cuda_quantize_fp8(it.w, d, it.rows, it.cols, b.dscale->get<float>(), 0,
                                  static_cast<uint8_t*>(it.out), ms);
    case MQ_FORMAT_NVFP4:
      return mq_cuda_quantize_nvfp4(it.w, d, it.rows, it.cols, it.scale,
                                    static_cast<uint8_t*>(it.out), static_cast<uint8_t*>(it.scales),
                                    ms);
    case MQ_FORMAT_FP8_BLOCK:
      return mq_cuda_quantize_fp8_block(it.w, d, it.rows, it.cols, static_cast<uint8_t*>(it.out),
                                        static_cast<float*>(it.scales), ms);
    case MQ_FORMAT_INT4:
      return mq_cuda_quantize_int4(it.w, d, it.rows, it.cols, static_cast<int32_t*>(it.out),
                                   static_cast<uint16_t*>(it.scales), it.qzeros, it.g_idx, ms);
  }
  return MQ_ERR_INVALID;
}

// Host data, the CPU reference and device buffers of one item.
void make_batch_item(mq_format f, mq_dtype d, const BatchSpec& spec, std::mt19937_64& rng,
                     BatchItem* b) {
  b->rows = spec.shape.rows;
  b->cols = spec.shape.cols;
  b->w = make_weights(rng, d, b->rows, b->cols, spec.kind);
  const float amax = host_amax(b->w, d, 0, b->rows * b->cols);
  if (spec.scale > 0.0f) {
    b->scale = spec.scale;
  } else if (f == MQ_FORMAT_NVFP4) {
    b->scale = spec.kind == Kind::kTiesBlock ? 0.015625f : num::nvfp4_scale2_from_amax(amax);
  } else {
    b->scale = num::fp8_scale_from_amax(amax);
  }
  const std::vector<size_t> sizes = output_sizes(f, b->rows, b->cols);
  for (const size_t n : sizes) b->cpu.emplace_back(n);
  mq_quant_item it{b->w.data(),
                   b->rows,
                   b->cols,
                   b->scale,
                   b->cpu[0].data(),
                   b->cpu[1].empty() ? nullptr : b->cpu[1].data(),
                   reinterpret_cast<int32_t*>(b->cpu[2].data()),
                   reinterpret_cast<int32_t*>(b->cpu[3].data())};
  ASSERT_EQ(MQ_OK, cpu_one(f, d, it)) << mq_last_error();
  b->dw = upload_weights(b->w, spec.in_offset);
  ASSERT_TRUE(b->dw->ok());
  b->dscale = std::make_unique<DeviceBuffer>(4);
  b->dscale->upload(&b->scale);
  for (size_t k = 0; k < sizes.size(); ++k) {
    if (sizes[k] == 0) {
      b->dout.push_back(nullptr);
      continue;
    }
    b->dout.push_back(std::make_unique<DeviceBuffer>(sizes[k], k == 0 ? spec.out_offset : 0));
    ASSERT_TRUE(b->dout.back()->ok());
  }
}

mq_quant_item device_item(const BatchItem& b) {
  return mq_quant_item{b.dw->get(),
                       b.rows,
                       b.cols,
                       b.scale,
                       b.out(0),
                       b.out(1),
                       static_cast<int32_t*>(b.out(2)),
                       static_cast<int32_t*>(b.out(3))};
}

// The three runs of one batch and the byte comparisons.
void check_batch(mq_format f, mq_dtype d, const std::vector<BatchSpec>& specs, std::mt19937_64& rng,
                 cudaStream_t stream = nullptr) {
  SCOPED_TRACE(std::string(format_name(f)) + " " + dtype_name(d) + ", " +
               std::to_string(specs.size()) + " items");
  std::vector<BatchItem> items(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    make_batch_item(f, d, specs[i], rng, &items[i]);
    if (::testing::Test::HasFatalFailure()) return;
  }
  std::vector<DeviceBuffer*> outs;
  std::vector<mq_quant_item> dev_items;
  for (const BatchItem& b : items) {
    for (const auto& o : b.dout) {
      if (o) outs.push_back(o.get());
    }
    dev_items.push_back(device_item(b));
  }
  const auto compare = [&](const char* run, const std::vector<std::vector<uint8_t>>& a,
                           const std::vector<std::vector<uint8_t>>& b) {
    static const char* kOut[] = {"out", "scales", "qzeros", "g_idx"};
    size_t k = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      for (size_t j = 0; j < items[i].dout.size(); ++j) {
        if (!items[i].dout[j]) continue;
        const std::string what = std::string(run) + ": item " + std::to_string(i) + " [" +
                                 std::to_string(items[i].rows) + ", " +
                                 std::to_string(items[i].cols) + "] " + kOut[j];
        expect_output(what.c_str(), a[k], b[k], items[i].cpu[j].data(), items[i].cpu[j].size());
        ++k;
      }
    }
  };
  std::vector<std::vector<uint8_t>> a, b;
  run_twice(
      outs,
      [&] {
        for (size_t i = 0; i < items.size(); ++i) {
          const mq_status st = cuda_one(f, d, items[i], dev_items[i], stream);
          if (st != MQ_OK) return st;
        }
        return MQ_OK;
      },
      &a, &b);
  if (::testing::Test::HasFatalFailure()) return;
  compare("per-matrix", a, b);
  a.clear();
  b.clear();
  run_twice(
      outs,
      [&] {
        return mq_cuda_quantize_batched(f, d, dev_items.data(),
                                        static_cast<int32_t>(dev_items.size()),
                                        reinterpret_cast<mq_stream_t>(stream));
      },
      &a, &b);
  if (::testing::Test::HasFatalFailure()) return;
  compare("batched", a, b);
}

// Awkward shapes each format accepts: single rows, widths off the vector size, edge tiles,
// int4 group tails, a partial last nvfp4 unit.
std::vector<Shape> awkward_batch_shapes(mq_format f) {
  switch (f) {
    case MQ_FORMAT_FP8:
      return {{1, 1}, {7, 13}, {300, 7}, {1, 300}, {130, 300}, {64, 2048}, {1000, 1}};
    case MQ_FORMAT_NVFP4:
      return {{1, 16}, {7, 48}, {3, 1008}, {130, 304}, {1, 2064}, {256, 2048}, {2048, 16}};
    case MQ_FORMAT_FP8_BLOCK:
      return {{1, 1}, {5, 13}, {257, 129}, {130, 300}, {128, 128}, {1, 1000}, {300, 1000}};
    case MQ_FORMAT_INT4:
      return {{8, 8}, {8, 136}, {136, 304}, {16, 1032}, {264, 1000}, {8, 2048}, {768, 136}};
  }
  return {};
}

// 8 experts of a Qwen3-30B-A3B layer: gate and up [768, 2048], down [2048, 768].
TEST(GpuQuantizeBatched, ExpertStackAllFormatsAndDtypes) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  for (const mq_format f : kFormats) {
    for (const mq_dtype d : kDtypes) {
      std::vector<BatchSpec> specs;
      for (int e = 0; e < 8; ++e) {
        specs.push_back({{768, 2048}, Kind::kNormal, 0, 0});
        specs.push_back({{768, 2048}, e % 2 ? Kind::kHeavy : Kind::kNormal, 0, 0});
        specs.push_back({{2048, 768}, Kind::kNormal, 0, 0});
      }
      check_batch(f, d, specs, s.rng);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

// Mixed awkward shapes and value kinds in one batch, every other input pointer off its 16-byte
// alignment and some byte outputs off by one.
TEST(GpuQuantizeBatched, MixedAwkwardShapesAndMisalignedPointers) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  for (const mq_format f : kFormats) {
    for (const mq_dtype d : kDtypes) {
      for (int misalign = 0; misalign < 2; ++misalign) {
        std::vector<BatchSpec> specs;
        const std::vector<Shape> shapes = awkward_batch_shapes(f);
        for (size_t i = 0; i < 2 * shapes.size(); ++i) {
          const bool byte_out = f == MQ_FORMAT_FP8 || f == MQ_FORMAT_NVFP4;
          specs.push_back({shapes[i % shapes.size()], kKinds[i % 4],
                           misalign && i % 2 == 1 ? static_cast<size_t>(elem_size(d)) : 0,
                           misalign && byte_out && i % 3 == 2 ? size_t{1} : 0});
        }
        check_batch(f, d, specs, s.rng);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

// Hundreds of small items (the item search takes several rounds, nvfp4 CTAs cross many items and
// rebuild their tables), and values and scales across the whole range (the fast paths' proven
// ranges end and the exact paths take over inside one batch).
TEST(GpuQuantizeBatched, ManySmallItemsAndWholeRangeScales) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  for (const mq_format f : kFormats) {
    for (const mq_dtype d : kDtypes) {
      std::vector<BatchSpec> specs;
      const std::vector<Shape> shapes = awkward_batch_shapes(f);
      for (int i = 0; i < 300; ++i) {
        Shape sh = shapes[static_cast<size_t>(i) % 4];  // the small ones
        specs.push_back({sh, i % 5 == 0 ? Kind::kTiesBlock : Kind::kNormal, 0, 0});
      }
      check_batch(f, d, specs, s.rng);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  const float scale2s[] = {0x1p-75f, 0x1p-61f, 0x1p-45f, 0x1p-20f, 0.001f,
                           1.0f,     0x1p6f,   0x1p10f,  0x1p40f,  0x1p100f};
  for (const mq_dtype d : kDtypes) {
    std::vector<BatchSpec> nv, other;
    for (const float s2 : scale2s) nv.push_back({{128, 1024}, Kind::kRange, 0, 0, s2});
    nv.push_back({{256, 1024}, Kind::kRange, 0, 0});
    check_batch(MQ_FORMAT_NVFP4, d, nv, s.rng);
    for (int i = 0; i < 4; ++i) other.push_back({{384, 1024}, Kind::kRange, 0, 0});
    check_batch(MQ_FORMAT_FP8, d, other, s.rng);
    check_batch(MQ_FORMAT_FP8_BLOCK, d, other, s.rng);
    std::vector<BatchSpec> i4;
    for (int i = 0; i < 4; ++i) i4.push_back({{384, 1024}, Kind::kRangeInt4, 0, 0});
    check_batch(MQ_FORMAT_INT4, d, i4, s.rng);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// Repeated calls on two streams with growing batches: the descriptor ring is reused and grows
// while earlier batches may still be in flight.
TEST(GpuQuantizeBatched, StreamsAndGrowingBatchesReuseTheDescriptorRing) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  cudaStream_t streams[2];
  CUDA_OK(cudaStreamCreateWithFlags(&streams[0], cudaStreamNonBlocking));
  CUDA_OK(cudaStreamCreateWithFlags(&streams[1], cudaStreamNonBlocking));
  for (int round = 0; round < 6; ++round) {
    const mq_format f = kFormats[round % 4];
    std::vector<BatchSpec> specs;
    const std::vector<Shape> shapes = awkward_batch_shapes(f);
    for (int i = 0; i < 2 + 40 * round; ++i) {
      specs.push_back({shapes[static_cast<size_t>(i) % 4], Kind::kHeavy, 0, 0});
    }
    check_batch(f, MQ_DTYPE_BF16, specs, s.rng, streams[round % 2]);
    if (::testing::Test::HasFatalFailure()) break;
  }
  CUDA_OK(cudaStreamDestroy(streams[0]));
  CUDA_OK(cudaStreamDestroy(streams[1]));
}

TEST(GpuQuantizeBatched, BadArgumentsNameTheItem) {
  SKIP_WITHOUT_GPU();
  DeviceBuffer w(4096), o(4096), sc(4096), z(4096), g(4096);
  w.poison(0);  // zeros: no int4 scale overflows
  const mq_quant_item good{w.get(),         16, 128, 0.01f, o.get(), sc.get(), z.get<int32_t>(),
                           g.get<int32_t>()};
  std::vector<mq_quant_item> items(4, good);
  for (const mq_format f : kFormats) {
    EXPECT_EQ(MQ_OK, mq_cuda_quantize_batched(f, MQ_DTYPE_BF16, items.data(), 4, nullptr))
        << format_name(f) << ": " << mq_last_error();
  }
  CUDA_OK(cudaDeviceSynchronize());
  const auto has = [](const char* what) {
    return std::string(mq_last_error()).find(what) != std::string::npos;
  };
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_batched(MQ_FORMAT_FP8, MQ_DTYPE_BF16, items.data(), 0, nullptr));
  EXPECT_TRUE(has("mq_cuda_quantize_batched") && has("must be > 0")) << mq_last_error();
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_batched(MQ_FORMAT_FP8, MQ_DTYPE_BF16, items.data(), -1, nullptr));
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_batched(MQ_FORMAT_FP8, MQ_DTYPE_BF16, nullptr, 4, nullptr));
  EXPECT_EQ(MQ_ERR_INVALID, mq_cuda_quantize_batched(static_cast<mq_format>(5), MQ_DTYPE_BF16,
                                                     items.data(), 4, nullptr));
  EXPECT_TRUE(has("unknown format 5")) << mq_last_error();
  EXPECT_EQ(MQ_ERR_INVALID, mq_cuda_quantize_batched(MQ_FORMAT_FP8, static_cast<mq_dtype>(3),
                                                     items.data(), 4, nullptr));
  EXPECT_TRUE(has("unknown dtype 3")) << mq_last_error();
  std::vector<mq_quant_item> bad = items;
  bad[2].w = nullptr;
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_batched(MQ_FORMAT_NVFP4, MQ_DTYPE_BF16, bad.data(), 4, nullptr));
  EXPECT_TRUE(has("item 2 (nvfp4)") && has("`w` is null")) << mq_last_error();
  bad = items;
  bad[3].cols = 120;  // not a multiple of 16
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_batched(MQ_FORMAT_NVFP4, MQ_DTYPE_BF16, bad.data(), 4, nullptr));
  EXPECT_TRUE(has("item 3 (nvfp4)") && has("multiple of 16")) << mq_last_error();
  bad = items;
  bad[1].scale = -1.0f;
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_batched(MQ_FORMAT_NVFP4, MQ_DTYPE_BF16, bad.data(), 4, nullptr));
  EXPECT_TRUE(has("item 1 (nvfp4)") && has("scale")) << mq_last_error();
  bad = items;
  bad[1].rows = 4;
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_batched(MQ_FORMAT_INT4, MQ_DTYPE_BF16, bad.data(), 4, nullptr));
  EXPECT_TRUE(has("item 1 (int4)") && has("rows must be a multiple of 8")) << mq_last_error();
  bad = items;
  bad[0].qzeros = nullptr;
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_batched(MQ_FORMAT_INT4, MQ_DTYPE_BF16, bad.data(), 4, nullptr));
  EXPECT_TRUE(has("item 0 (int4)") && has("qzeros")) << mq_last_error();
  bad = items;
  bad[2].scales = nullptr;
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_batched(MQ_FORMAT_FP8_BLOCK, MQ_DTYPE_BF16, bad.data(), 4, nullptr));
  EXPECT_TRUE(has("item 2 (fp8_block)") && has("tile_scales")) << mq_last_error();
  bad = items;
  bad[3].rows = 0;
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_batched(MQ_FORMAT_FP8, MQ_DTYPE_BF16, bad.data(), 4, nullptr));
  EXPECT_TRUE(has("item 3 (fp8)") && has("positive")) << mq_last_error();
  bad = items;
  bad[1].w = static_cast<const unsigned char*>(bad[1].w) + 1;  // off the element size
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_batched(MQ_FORMAT_FP8, MQ_DTYPE_BF16, bad.data(), 4, nullptr));
  EXPECT_TRUE(has("item 1 (fp8)") && has("aligned")) << mq_last_error();
  CUDA_OK(cudaDeviceSynchronize());
  CUDA_OK(cudaGetLastError());
}

TEST(GpuQuantizeBatched, Int4OverflowNamesTheItemRowAndGroup) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  for (const mq_dtype d : kDtypes) {
    SCOPED_TRACE(dtype_name(d));
    const int64_t rows = 16, cols = 256;
    std::vector<std::unique_ptr<DeviceBuffer>> bufs;
    std::vector<mq_quant_item> items;
    for (int i = 0; i < 5; ++i) {
      std::vector<unsigned char> w = make_weights(s.rng, d, rows, cols, Kind::kNormal);
      if (i == 3)
        store_value(d, d == MQ_DTYPE_F16 ? INFINITY : 1e6f,
                    &w[static_cast<size_t>((9 * cols + 200) * elem_size(d))]);
      if (i == 4) store_value(d, -2e6f, &w[static_cast<size_t>((2 * cols + 3) * elem_size(d))]);
      bufs.push_back(upload_weights(w, 0));
      const mq_quant_item it{
          bufs.back()->get(), rows, cols, 1.0f, nullptr, nullptr, nullptr, nullptr};
      items.push_back(it);
      for (int k = 0; k < 4; ++k) bufs.push_back(std::make_unique<DeviceBuffer>(4096));
      items.back().out = bufs[bufs.size() - 4]->get();
      items.back().scales = bufs[bufs.size() - 3]->get();
      items.back().qzeros = bufs[bufs.size() - 2]->get<int32_t>();
      items.back().g_idx = bufs[bufs.size() - 1]->get<int32_t>();
    }
    EXPECT_EQ(MQ_ERR_RANGE, mq_cuda_quantize_batched(MQ_FORMAT_INT4, d, items.data(), 5, nullptr));
    const std::string msg = mq_last_error();
    EXPECT_NE(msg.find("item 3 (int4)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("row 9, group 1"), std::string::npos) << msg;
    // the next call succeeds (the flags were reset)
    EXPECT_EQ(MQ_OK, mq_cuda_quantize_batched(MQ_FORMAT_INT4, d, items.data(), 3, nullptr))
        << mq_last_error();
  }
}

// ---- dequantize -----------------------------------------------------------------------------

std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

std::vector<float> random_scales(std::mt19937_64& rng, size_t n) {
  std::uniform_real_distribution<float> e(-12.0f, 4.0f);
  std::vector<float> v(n);
  for (float& x : v) x = std::exp2(e(rng));
  return v;
}

TEST(GpuDequantize, AllFormatsMatchCpu) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  const Shape shapes[] = {{8, 16}, {1, 48}, {136, 304}, {264, 1008}, {2048, 768}};
  for (const Shape& sh : shapes) {
    const int64_t rows = sh.rows, cols = sh.cols, n = rows * cols;
    SCOPED_TRACE("[" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    for (size_t off = 0; off < 2; ++off) {  // off = 1 misaligns inputs and outputs
      SCOPED_TRACE("offset " + std::to_string(off));
      std::vector<std::vector<uint8_t>> a, b;
      // fp8, per-tensor and per-row
      for (int32_t per_row = 0; per_row < 2; ++per_row) {
        const std::vector<uint8_t> q = random_bytes(s.rng, static_cast<size_t>(n));
        const std::vector<float> sc = random_scales(s.rng, per_row ? static_cast<size_t>(rows) : 1);
        std::vector<float> cpu(static_cast<size_t>(n));
        MQ_EXPECT_OK(mq_cpu_dequantize_fp8(q.data(), rows, cols, sc.data(), per_row, cpu.data()));
        DeviceBuffer dq(q.size(), off), ds(sc.size() * 4), out(cpu.size() * 4, 4 * off);
        dq.upload(q.data());
        ds.upload(sc.data());
        a.clear();
        b.clear();
        run_twice(
            {&out},
            [&] {
              return mq_cuda_dequantize_fp8(dq.get<uint8_t>(), rows, cols, ds.get<float>(), per_row,
                                            out.get<float>(), nullptr);
            },
            &a, &b);
        if (::testing::Test::HasFatalFailure()) return;
        expect_output("dequantize fp8 (written)", a[0], b[0], a[0].data(), cpu.size() * 4);
        expect_floats("dequantize fp8", a[0], cpu);
      }
      {  // nvfp4
        const std::vector<uint8_t> p = random_bytes(s.rng, static_cast<size_t>(n / 2));
        const std::vector<uint8_t> bs = random_bytes(s.rng, static_cast<size_t>(n / 16));
        const float scale2 = random_scales(s.rng, 1)[0];
        std::vector<float> cpu(static_cast<size_t>(n));
        MQ_EXPECT_OK(mq_cpu_dequantize_nvfp4(p.data(), bs.data(), scale2, rows, cols, cpu.data()));
        DeviceBuffer dp(p.size(), off), dbs(bs.size(), off), out(cpu.size() * 4, 4 * off);
        dp.upload(p.data());
        dbs.upload(bs.data());
        a.clear();
        b.clear();
        run_twice(
            {&out},
            [&] {
              return mq_cuda_dequantize_nvfp4(dp.get<uint8_t>(), dbs.get<uint8_t>(), scale2, rows,
                                              cols, out.get<float>(), nullptr);
            },
            &a, &b);
        if (::testing::Test::HasFatalFailure()) return;
        expect_output("dequantize nvfp4 (written)", a[0], b[0], a[0].data(), cpu.size() * 4);
        expect_floats("dequantize nvfp4", a[0], cpu);
      }
      {  // fp8_block
        const std::vector<uint8_t> q = random_bytes(s.rng, static_cast<size_t>(n));
        const std::vector<float> ts =
            random_scales(s.rng, static_cast<size_t>(((rows + 127) / 128) * ((cols + 127) / 128)));
        std::vector<float> cpu(static_cast<size_t>(n));
        MQ_EXPECT_OK(mq_cpu_dequantize_fp8_block(q.data(), ts.data(), rows, cols, cpu.data()));
        DeviceBuffer dq(q.size(), off), dts(ts.size() * 4), out(cpu.size() * 4, 4 * off);
        dq.upload(q.data());
        dts.upload(ts.data());
        a.clear();
        b.clear();
        run_twice(
            {&out},
            [&] {
              return mq_cuda_dequantize_fp8_block(dq.get<uint8_t>(), dts.get<float>(), rows, cols,
                                                  out.get<float>(), nullptr);
            },
            &a, &b);
        if (::testing::Test::HasFatalFailure()) return;
        expect_output("dequantize fp8_block (written)", a[0], b[0], a[0].data(), cpu.size() * 4);
        expect_floats("dequantize fp8_block", a[0], cpu);
      }
      if (rows % 8 == 0 && cols % 8 == 0) {  // int4
        const std::vector<uint8_t> qw = random_bytes(s.rng, static_cast<size_t>(n / 2));
        std::vector<uint16_t> sc(static_cast<size_t>(((cols + 127) / 128) * rows));
        for (uint16_t& h : sc) {
          bool overflow = false;
          h = num::float_to_half(random_scales(s.rng, 1)[0], &overflow);
        }
        std::vector<float> cpu(static_cast<size_t>(n));
        MQ_EXPECT_OK(mq_cpu_dequantize_int4(reinterpret_cast<const int32_t*>(qw.data()), sc.data(),
                                            rows, cols, cpu.data()));
        DeviceBuffer dq(qw.size()), ds(sc.size() * 2), out(cpu.size() * 4, 4 * off);
        dq.upload(qw.data());
        ds.upload(sc.data());
        a.clear();
        b.clear();
        run_twice(
            {&out},
            [&] {
              return mq_cuda_dequantize_int4(dq.get<int32_t>(), ds.get<uint16_t>(), rows, cols,
                                             out.get<float>(), nullptr);
            },
            &a, &b);
        if (::testing::Test::HasFatalFailure()) return;
        expect_output("dequantize int4 (written)", a[0], b[0], a[0].data(), cpu.size() * 4);
        expect_floats("dequantize int4", a[0], cpu);
      }
    }
  }
}

// MXFP4 sources (GPT-OSS releases): every scale byte (255 included) and code, bf16 bits equal to
// the CPU path's, also from misaligned inputs and outputs.
TEST(GpuDequantize, Mxfp4Bf16MatchesCpu) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  const Shape shapes[] = {{1, 32}, {7, 96}, {256, 2880}, {5760, 64}};
  for (const Shape& sh : shapes) {
    const int64_t rows = sh.rows, cols = sh.cols, n = rows * cols;
    SCOPED_TRACE("[" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    for (size_t off = 0; off < 2; ++off) {
      const std::vector<uint8_t> blocks = random_bytes(s.rng, static_cast<size_t>(n / 2));
      const std::vector<uint8_t> scales = random_bytes(s.rng, static_cast<size_t>(n / 32));
      std::vector<uint16_t> cpu(static_cast<size_t>(n));
      MQ_EXPECT_OK(
          mq_cpu_dequantize_mxfp4_bf16(blocks.data(), scales.data(), rows, cols, cpu.data()));
      DeviceBuffer db(blocks.size(), off), ds(scales.size(), off), out(cpu.size() * 2, 2 * off);
      db.upload(blocks.data());
      ds.upload(scales.data());
      std::vector<std::vector<uint8_t>> a, b;
      run_twice(
          {&out},
          [&] {
            return mq_cuda_dequantize_mxfp4_bf16(db.get<uint8_t>(), ds.get<uint8_t>(), rows, cols,
                                                 out.get<uint16_t>(), nullptr);
          },
          &a, &b);
      if (::testing::Test::HasFatalFailure()) return;
      expect_output("dequantize mxfp4 bf16", a[0], b[0], cpu.data(), cpu.size() * 2);
    }
  }
}

// An FP8 block source (DeepSeek-V3's release) read as bf16: CUDA == CPU bit for bit, partial
// 128-blocks and misaligned buffers included, every e4m3 code (NaN codes too) and scales across
// the float32 range.
TEST(GpuDequantize, Fp8BlockSourceToBf16MatchesCpu) {
  SKIP_WITHOUT_GPU();
  Seeded s;
  SCOPED_TRACE(s.trace());
  const Shape shapes[] = {{1, 1}, {8, 16}, {130, 300}, {256, 7168}, {2048, 160}};
  for (const Shape& sh : shapes) {
    const int64_t rows = sh.rows, cols = sh.cols, n = rows * cols;
    SCOPED_TRACE("[" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    for (size_t off = 0; off < 2; ++off) {
      const std::vector<uint8_t> q = random_bytes(s.rng, static_cast<size_t>(n));
      const std::vector<float> ts =
          random_scales(s.rng, static_cast<size_t>(((rows + 127) / 128) * ((cols + 127) / 128)));
      std::vector<uint16_t> cpu(static_cast<size_t>(n));
      MQ_EXPECT_OK(mq_cpu_dequantize_fp8_block_bf16(q.data(), ts.data(), rows, cols, cpu.data()));
      DeviceBuffer dq(q.size(), off), dts(ts.size() * 4), out(cpu.size() * 2, 2 * off);
      dq.upload(q.data());
      dts.upload(ts.data());
      std::vector<std::vector<uint8_t>> a, b;
      run_twice(
          {&out},
          [&] {
            return mq_cuda_dequantize_fp8_block_bf16(dq.get<uint8_t>(), dts.get<float>(), rows,
                                                     cols, out.get<uint16_t>(), nullptr);
          },
          &a, &b);
      if (::testing::Test::HasFatalFailure()) return;
      expect_output("fp8 block source as bf16", a[0], b[0], cpu.data(), cpu.size() * 2);
    }
  }
}

TEST(GpuKernels, AvailableAndErrorsNameTheFunction) {
  SKIP_WITHOUT_GPU();
  EXPECT_EQ(1, mq_cuda_available());
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_fp8(nullptr, MQ_DTYPE_BF16, 1, 1, nullptr, 0, nullptr, nullptr));
  EXPECT_NE(std::string(mq_last_error()).find("mq_cuda_quantize_fp8"), std::string::npos);
  DeviceBuffer w(64), o(64), s(64);
  EXPECT_EQ(MQ_ERR_INVALID, mq_cuda_quantize_fp8(w.get(), static_cast<mq_dtype>(7), 1, 1,
                                                 s.get<float>(), 0, o.get<uint8_t>(), nullptr));
  EXPECT_EQ(MQ_ERR_INVALID,
            mq_cuda_quantize_int4(w.get(), MQ_DTYPE_BF16, 4, 8, o.get<int32_t>(), s.get<uint16_t>(),
                                  o.get<int32_t>(), o.get<int32_t>(), nullptr));
}

}  // namespace
