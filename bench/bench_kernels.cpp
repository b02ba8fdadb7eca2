// bench_kernels: bandwidth of the amax and quantize kernels against the memory system's own
// yardstick measured in the same run (GPU: a device-to-device copy, bytes read + written; CPU: a
// single-pass read of the same bytes with the same threads), as sweep tables in the manner of
// nccl-tests, with a correctness check on every row.
//
//   bench_kernels [--cpu-only | --gpu-only] [--layers N] [--cpu-mib N] [--repeats N]
//                 [--quant-only] [--formats fp8,nvfp4,fp8_block,int4]
//
// GPU (a): amax over a Qwen3-30B-A3B-shaped stack (per layer 128 experts x gate/up [768, 2048]
// and down [2048, 768], bf16), 1, 2, 4, ... N layers, one slot per (layer, projection), against
// the per-tensor "abs then amax" loop of two launches per tensor that PyTorch code runs
// (bench/amax_torch_baseline.py measures PyTorch itself). (b) each quantize format over square
// matrices, with a 128-row band of every output compared to the CPU path. CPU (c): multi_amax and
// the quantizers over --cpu-mib MiB. The process exits 1 when any check fails (performance
// below target is reported, not fatal).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"

#ifdef MOEQUANT_HAS_CUDA
#include <cuda_runtime.h>

#include "bench_kernels_gpu.h"
#endif

namespace {

namespace num = moequant::num;

struct Options {
  bool cpu = true;
  bool gpu = true;
  int layers = 8;
  int cpu_mib = 256;
  int repeats = 20;
  bool amax = true;     // --quant-only: skip the GPU amax sweep
  std::string formats;  // --formats a,b: only these quantize formats (all when empty)
};

bool g_failed = false;

const char* check_word(bool ok) {
  if (!ok) g_failed = true;
  return ok ? "OK" : "FAIL";
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Qwen3-30B-A3B expert shapes: gate and up [768, 2048], down [2048, 768] (bf16).
constexpr int kExperts = 128;
constexpr int64_t kInter = 768, kHidden = 2048;
constexpr int64_t kTensorElems = kInter * kHidden;
constexpr int64_t kTensorBytes = kTensorElems * 2;

struct MatShape {
  int64_t rows, cols;
};
MatShape proj_shape(int proj) {
  return proj == 2 ? MatShape{kHidden, kInter} : MatShape{kInter, kHidden};
}

// Bytes each format writes for a [rows, cols] input.
int64_t written_bytes(const std::string& fmt, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  if (fmt == "fp8") return n;
  if (fmt == "nvfp4") return n / 2 + n / 16;
  if (fmt == "fp8_block") return n + ((rows + 127) / 128) * ((cols + 127) / 128) * 4;
  const int64_t g = (cols + 127) / 128;  // int4
  return n / 2 + g * rows * 2 + g * rows / 8 * 4 + cols * 4;
}

const char* kFormats[] = {"fp8", "nvfp4", "fp8_block", "int4"};

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

void fill_host_bf16(uint16_t* dst, int64_t n, uint64_t seed) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t h = mix(seed ^ mix(static_cast<uint64_t>(i)));
    float u = 0.0f;
    for (int k = 0; k < 4; ++k) u += static_cast<float>((h >> (16 * k)) & 0xffffu) / 65536.0f;
    dst[i] = static_cast<uint16_t>(num::float_bits((u - 2.0f) * 0.035f) >> 16);
  }
}

// ---- CPU ------------------------------------------------------------------------------------

template <typename F>
double time_cpu_ms(F&& f, int reps) {
  f();  // warm-up (page faults, thread pool)
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto a = std::chrono::steady_clock::now();
    f();
    const auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double, std::milli>(b - a).count());
  }
  return median(t);
}

// The yardstick: one pass reading every byte (sum of 64-bit words), same threads as mq_cpu_*.
uint64_t read_all(const uint64_t* p, int64_t words) {
  uint64_t s = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : s)
  for (int64_t i = 0; i < words; ++i) s += p[i];
  return s;
}

float ref_bf16(const uint16_t* w, int64_t i) {
  return num::bf16_to_float(w[i]);
}

// Spot checks of CPU quantizer outputs against numerics.h applied directly.
bool spot_check_cpu(const std::string& fmt, const uint16_t* w, int64_t rows, int64_t cols,
                    float scale, const std::vector<uint8_t>& a, const std::vector<uint8_t>& b,
                    const std::vector<int32_t>& qw, const std::vector<uint16_t>& qs) {
  const int64_t n = rows * cols;
  for (int k = 0; k < 64; ++k) {
    const int64_t i =
        static_cast<int64_t>(mix(static_cast<uint64_t>(k) + 7) % static_cast<uint64_t>(n));
    const int64_t r = i / cols, c = i % cols;
    if (fmt == "fp8") {
      if (a[i] != num::float_to_e4m3(ref_bf16(w, i) / scale)) return false;
    } else if (fmt == "nvfp4") {
      const int64_t b0 = i / 16 * 16;
      float m = 0.0f;
      for (int64_t j = b0; j < b0 + 16; ++j) m = std::max(m, std::fabs(ref_bf16(w, j)));
      const uint8_t sc = num::nvfp4_block_scale(m, scale);
      if (b[i / 16] != sc) return false;
      const uint8_t code = num::float_to_e2m1(ref_bf16(w, i) / (num::e4m3_to_float(sc) * scale));
      if (((a[i / 2] >> (4 * (i % 2))) & 0xf) != code) return false;
    } else if (fmt == "fp8_block") {
      const int64_t tc = (cols + 127) / 128, r0 = r / 128 * 128, c0 = c / 128 * 128;
      float m = 0.0f;
      for (int64_t rr = r0; rr < std::min(rows, r0 + 128); ++rr) {
        for (int64_t cc = c0; cc < std::min(cols, c0 + 128); ++cc) {
          m = std::max(m, std::fabs(ref_bf16(w, rr * cols + cc)));
        }
      }
      const float s = num::fp8_scale_from_amax(m);
      float stored;
      std::memcpy(&stored, &b[static_cast<size_t>((r / 128 * tc + c / 128) * 4)], 4);
      if (stored != s || a[i] != num::float_to_e4m3(ref_bf16(w, i) / s)) return false;
    } else {  // int4
      const int64_t g = c / 128, c0 = g * 128;
      float m = 0.0f;
      for (int64_t cc = c0; cc < std::min(cols, c0 + 128); ++cc) {
        m = std::max(m, std::fabs(ref_bf16(w, r * cols + cc)));
      }
      bool overflow = false;
      const uint16_t sb = num::float_to_half(m == 0.0f ? 1.0f : m / 7.0f, &overflow);
      if (qs[static_cast<size_t>(g * rows + r)] != sb) return false;
      const uint32_t word = static_cast<uint32_t>(qw[static_cast<size_t>((c / 8) * rows + r)]);
      if (((word >> (4 * (c % 8))) & 0xf) !=
          num::int4_code(ref_bf16(w, i), num::half_to_float(sb))) {
        return false;
      }
    }
  }
  return true;
}

void run_cpu(const Options& opt) {
  const int threads = omp_get_max_threads();
  const int experts =
      std::max(1, static_cast<int>((int64_t{opt.cpu_mib} << 20) / (3 * kTensorBytes)));
  const int64_t tensors = 3 * experts;
  const int64_t bytes = tensors * kTensorBytes;
  std::vector<uint16_t> buf(static_cast<size_t>(bytes / 2));
  fill_host_bf16(buf.data(), static_cast<int64_t>(buf.size()), 42);

  std::printf("\n# CPU, %d threads: %d experts x 3 bf16 tensors (Qwen3-30B-A3B shapes), %.1f MiB\n",
              threads, experts, static_cast<double>(bytes) / (1 << 20));
  std::printf(
      "# ratio = (bytes read + written) / time over the single-pass read of the same bytes"
      " (target >= 0.80)\n");
  std::printf("# %-26s %12s %10s %10s %8s %6s\n", "op", "MiB moved", "time(ms)", "GB/s", "ratio",
              "check");
  volatile uint64_t sink = 0;
  const double t_read = time_cpu_ms(
      [&] { sink = read_all(reinterpret_cast<const uint64_t*>(buf.data()), bytes / 8); },
      opt.repeats);
  const double read_gbs = static_cast<double>(bytes) / t_read / 1e6;
  std::printf("  %-26s %12.1f %10.3f %10.1f %8.2f %6s\n", "read (sum of words)",
              static_cast<double>(bytes) / (1 << 20), t_read, read_gbs, 1.0, "-");

  // multi_amax: per-tensor items, one slot per projection (a grouped linear's shared quantizer).
  std::vector<mq_amax_item> items;
  for (int64_t t = 0; t < tensors; ++t) {
    const MatShape s = proj_shape(static_cast<int>(t % 3));
    items.push_back(mq_amax_item{buf.data() + t * kTensorElems, s.rows, s.cols, MQ_DTYPE_BF16,
                                 static_cast<int32_t>(t % 3), 0});
  }
  std::vector<float> slots(3, 0.0f);
  std::vector<int32_t> flags(static_cast<size_t>(tensors), 0);
  bool amax_ok = true;
  const double t_amax = time_cpu_ms(
      [&] {
        if (mq_cpu_multi_amax(items.data(), static_cast<int32_t>(tensors), slots.data(),
                              flags.data()) != MQ_OK) {
          amax_ok = false;
        }
      },
      opt.repeats);
  float ref[3] = {0, 0, 0};
  for (int64_t t = 0; t < tensors; ++t) {
    float m = 0.0f;
    for (int64_t i = 0; i < kTensorElems; ++i)
      m = std::max(m, std::fabs(ref_bf16(buf.data(), t * kTensorElems + i)));
    ref[t % 3] = std::max(ref[t % 3], m);
  }
  for (int k = 0; k < 3; ++k) amax_ok = amax_ok && slots[k] == ref[k];
  const double amax_gbs = static_cast<double>(bytes) / t_amax / 1e6;
  std::printf("  %-26s %12.1f %10.3f %10.1f %8.2f %6s\n", "mq_cpu_multi_amax",
              static_cast<double>(bytes) / (1 << 20), t_amax, amax_gbs, amax_gbs / read_gbs,
              check_word(amax_ok));

  // quantizers over the same bytes viewed as one [rows, 2048] matrix
  const int64_t cols = kHidden, rows = bytes / 2 / cols;
  const int64_t n = rows * cols;
  const float amax = std::max({ref[0], ref[1], ref[2]});
  for (const char* fmt_c : kFormats) {
    const std::string fmt = fmt_c;
    std::vector<uint8_t> a, b;
    std::vector<int32_t> qw, qz, gi;
    std::vector<uint16_t> qs;
    float scale = 0.0f;
    std::function<mq_status()> call;
    if (fmt == "fp8") {
      scale = num::fp8_scale_from_amax(amax);
      a.resize(static_cast<size_t>(n));
      call = [&] {
        return mq_cpu_quantize_fp8(buf.data(), MQ_DTYPE_BF16, rows, cols, &scale, 0, a.data());
      };
    } else if (fmt == "nvfp4") {
      scale = num::nvfp4_scale2_from_amax(amax);
      a.resize(static_cast<size_t>(n / 2));
      b.resize(static_cast<size_t>(n / 16));
      call = [&] {
        return mq_cpu_quantize_nvfp4(buf.data(), MQ_DTYPE_BF16, rows, cols, scale, a.data(),
                                     b.data());
      };
    } else if (fmt == "fp8_block") {
      a.resize(static_cast<size_t>(n));
      b.resize(static_cast<size_t>(((rows + 127) / 128) * ((cols + 127) / 128) * 4));
      call = [&] {
        return mq_cpu_quantize_fp8_block(buf.data(), MQ_DTYPE_BF16, rows, cols, a.data(),
                                         reinterpret_cast<float*>(b.data()));
      };
    } else {
      const int64_t g = (cols + 127) / 128;
      qw.resize(static_cast<size_t>(n / 8));
      qs.resize(static_cast<size_t>(g * rows));
      qz.resize(static_cast<size_t>(g * rows / 8));
      gi.resize(static_cast<size_t>(cols));
      call = [&] {
        return mq_cpu_quantize_int4(buf.data(), MQ_DTYPE_BF16, rows, cols, qw.data(), qs.data(),
                                    qz.data(), gi.data());
      };
    }
    bool ok = true;
    const double t = time_cpu_ms([&] { ok = ok && call() == MQ_OK; }, std::max(3, opt.repeats / 4));
    ok = ok && spot_check_cpu(fmt, buf.data(), rows, cols, scale, a, b, qw, qs);
    const int64_t moved = 2 * n + written_bytes(fmt, rows, cols);
    const double gbs = static_cast<double>(moved) / t / 1e6;
    std::printf("  %-26s %12.1f %10.3f %10.1f %8.2f %6s\n", ("mq_cpu_quantize_" + fmt).c_str(),
                static_cast<double>(moved) / (1 << 20), t, gbs, gbs / read_gbs, check_word(ok));
  }
  (void)sink;
}

// ---- GPU ------------------------------------------------------------------------------------

#ifdef MOEQUANT_HAS_CUDA

#define BENCH_CUDA(call)                                                        \
  do {                                                                          \
    const cudaError_t e_ = (call);                                              \
    if (e_ != cudaSuccess) {                                                    \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, \
                   cudaGetErrorString(e_));                                     \
      std::exit(2);                                                             \
    }                                                                           \
  } while (0)

#define BENCH_MQ(call)                                                                            \
  do {                                                                                            \
    if ((call) != MQ_OK) {                                                                        \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, mq_last_error()); \
      std::exit(2);                                                                               \
    }                                                                                             \
  } while (0)

// Median time of f() between two events, after warm-up runs.
template <typename F>
double time_gpu_ms(F&& f, int reps, cudaStream_t s, int warmup = 3) {
  cudaEvent_t a, b;
  BENCH_CUDA(cudaEventCreate(&a));
  BENCH_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < warmup; ++i) f();
  BENCH_CUDA(cudaStreamSynchronize(s));
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    BENCH_CUDA(cudaEventRecord(a, s));
    f();
    BENCH_CUDA(cudaEventRecord(b, s));
    BENCH_CUDA(cudaEventSynchronize(b));
    float ms = 0.0f;
    BENCH_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  BENCH_CUDA(cudaEventDestroy(a));
  BENCH_CUDA(cudaEventDestroy(b));
  return median(t);
}

template <typename T>
T* dev_alloc(size_t bytes) {
  void* p = nullptr;
  BENCH_CUDA(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
  return static_cast<T*>(p);
}

// Device-to-device copy of 2 GiB: (bytes read + written) / time.
double copy_bandwidth(int reps, cudaStream_t s) {
  const size_t bytes = size_t{2} << 30;
  void* src = dev_alloc<void>(bytes);
  void* dst = dev_alloc<void>(bytes);
  BENCH_CUDA(cudaMemsetAsync(src, 1, bytes, s));
  const double ms = time_gpu_ms(
      [&] { BENCH_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s)); }, reps, s);
  BENCH_CUDA(cudaFree(src));
  BENCH_CUDA(cudaFree(dst));
  std::printf("# device-to-device copy, 2 GiB: %.3f ms, %.1f GB/s (bytes read + written)\n", ms,
              2.0 * static_cast<double>(bytes) / ms / 1e6);
  return 2.0 * static_cast<double>(bytes) / ms / 1e6;
}

struct Summary {
  std::vector<std::string> lines;
};

void bench_gpu_amax(const Options& opt, double copy_gbs, int sms, cudaStream_t s, Summary* sum) {
  const int64_t per_layer = 3 * kExperts;
  const int64_t max_tensors = per_layer * opt.layers;
  uint16_t* stack = dev_alloc<uint16_t>(static_cast<size_t>(max_tensors * kTensorBytes));
  std::vector<const void*> ptrs;
  std::vector<int64_t> numel;
  for (int64_t t = 0; t < max_tensors; ++t) {
    uint16_t* p = stack + t * kTensorElems;
    // a different spread per tensor, so per-slot maxima come from different tensors
    BENCH_CUDA(moequant::bench::fill_random_bf16(p, kTensorElems, static_cast<uint64_t>(t) + 1,
                                                 0.01f * static_cast<float>(1 + t % 13), s));
    ptrs.push_back(p);
    numel.push_back(kTensorElems);
  }
  void* tmp = dev_alloc<void>(kTensorBytes);
  float* loop_out = dev_alloc<float>(static_cast<size_t>(max_tensors) * 4);
  float* slots = dev_alloc<float>(static_cast<size_t>(3 * opt.layers) * 4);
  int32_t* flags = dev_alloc<int32_t>(static_cast<size_t>(max_tensors) * 4);
  BENCH_CUDA(cudaStreamSynchronize(s));

  std::printf(
      "\n# amax (GPU): Qwen3-30B-A3B-shaped stack, %d experts x (gate, up [768, 2048], "
      "down [2048, 768]) bf16 per layer,\n#   one slot per (layer, projection); "
      "loop = per tensor abs + amax launches (PyTorch's way), no host sync\n",
      kExperts);
  std::printf("# %6s %8s %8s %10s %10s %8s %10s %9s %6s\n", "layers", "tensors", "GB", "time(ms)",
              "read GB/s", "vs copy", "loop(ms)", "speedup", "check");
  std::vector<int> sweep;
  for (int l = 1; l < opt.layers; l *= 2) sweep.push_back(l);
  sweep.push_back(opt.layers);
  for (const int layers : sweep) {
    const int64_t count = per_layer * layers;
    std::vector<mq_amax_item> items;
    // order as calibration visits them: layer, projection, expert
    std::vector<int64_t> tensor_of_item;
    for (int l = 0; l < layers; ++l) {
      for (int proj = 0; proj < 3; ++proj) {
        for (int e = 0; e < kExperts; ++e) {
          const int64_t t = l * per_layer + 3 * e + proj;
          const MatShape sh = proj_shape(proj);
          items.push_back(mq_amax_item{ptrs[static_cast<size_t>(t)], sh.rows, sh.cols,
                                       MQ_DTYPE_BF16, 3 * l + proj, 0});
          tensor_of_item.push_back(t);
        }
      }
    }
    const double bytes = static_cast<double>(count * kTensorBytes);
    const double ms = time_gpu_ms(
        [&] {
          BENCH_MQ(mq_cuda_multi_amax(items.data(), static_cast<int32_t>(count), slots, flags,
                                      reinterpret_cast<mq_stream_t>(s)));
        },
        opt.repeats, s);
    const double loop_ms = time_gpu_ms(
        [&] {
          BENCH_CUDA(moequant::bench::torchlike_amax_loop(
              ptrs.data(), numel.data(), static_cast<int>(count), tmp, loop_out, sms, s));
        },
        std::max(3, opt.repeats / 4), s, 1);
    // check: fresh slots and flags against the loop's per-tensor maxima combined per slot
    BENCH_CUDA(cudaMemsetAsync(slots, 0, static_cast<size_t>(3 * layers) * 4, s));
    BENCH_CUDA(cudaMemsetAsync(flags, 0, static_cast<size_t>(count) * 4, s));
    BENCH_CUDA(cudaMemsetAsync(loop_out, 0, static_cast<size_t>(count) * 4, s));
    BENCH_MQ(mq_cuda_multi_amax(items.data(), static_cast<int32_t>(count), slots, flags,
                                reinterpret_cast<mq_stream_t>(s)));
    BENCH_CUDA(moequant::bench::torchlike_amax_loop(
        ptrs.data(), numel.data(), static_cast<int>(count), tmp, loop_out, sms, s));
    std::vector<float> h_slots(static_cast<size_t>(3 * layers)), h_loop(static_cast<size_t>(count));
    std::vector<int32_t> h_flags(static_cast<size_t>(count));
    BENCH_CUDA(
        cudaMemcpyAsync(h_slots.data(), slots, h_slots.size() * 4, cudaMemcpyDeviceToHost, s));
    BENCH_CUDA(
        cudaMemcpyAsync(h_loop.data(), loop_out, h_loop.size() * 4, cudaMemcpyDeviceToHost, s));
    BENCH_CUDA(
        cudaMemcpyAsync(h_flags.data(), flags, h_flags.size() * 4, cudaMemcpyDeviceToHost, s));
    BENCH_CUDA(cudaStreamSynchronize(s));
    std::vector<float> want(static_cast<size_t>(3 * layers), 0.0f);
    for (size_t k = 0; k < items.size(); ++k) {
      float& w = want[static_cast<size_t>(items[k].slot)];
      w = std::max(w, h_loop[static_cast<size_t>(tensor_of_item[k])]);
    }
    bool ok = want == h_slots;
    for (const int32_t f : h_flags) ok = ok && f == 0;
    if (layers == sweep.front()) {  // and one tensor against the CPU path
      std::vector<uint16_t> h(static_cast<size_t>(kTensorElems));
      BENCH_CUDA(cudaMemcpy(h.data(), ptrs[1], kTensorBytes, cudaMemcpyDeviceToHost));
      mq_amax_item it{h.data(), kInter, kHidden, MQ_DTYPE_BF16, 0, 0};
      float cpu = 0.0f;
      int32_t flag = 0;
      ok = ok && mq_cpu_multi_amax(&it, 1, &cpu, &flag) == MQ_OK && cpu == h_loop[1];
    }
    const double gbs = bytes / ms / 1e6;
    std::printf("  %6d %8lld %8.2f %10.3f %10.1f %8.3f %10.3f %9.1f %6s\n", layers,
                static_cast<long long>(count), bytes / 1e9, ms, gbs, gbs / copy_gbs, loop_ms,
                loop_ms / ms, check_word(ok));
    if (layers == opt.layers) {
      char line[256];
      std::snprintf(line, sizeof line,
                    "amax, %d layers (%.2f GB): %.3f of copy bandwidth (target >= 0.90): %s; "
                    "%.1fx the per-tensor loop",
                    layers, bytes / 1e9, gbs / copy_gbs, gbs / copy_gbs >= 0.9 ? "MET" : "BELOW",
                    loop_ms / ms);
      sum->lines.push_back(line);
    }
  }
  BENCH_CUDA(cudaFree(stack));
  BENCH_CUDA(cudaFree(tmp));
  BENCH_CUDA(cudaFree(loop_out));
  BENCH_CUDA(cudaFree(slots));
  BENCH_CUDA(cudaFree(flags));
}

// Device outputs of one format for a [rows, cols] input.
struct QuantOut {
  uint8_t* a = nullptr;  // fp8 / packed / fp8_block codes / int4 qweight
  uint8_t* b = nullptr;  // nvfp4 block scales / fp8_block tile scales / int4 scales
  int32_t* z = nullptr;  // int4 qzeros
  int32_t* g = nullptr;  // int4 g_idx
};

// Compares rows [r0, r0 + 128) of every GPU output with the CPU path run on those rows alone.
bool band_check(const std::string& fmt, const uint16_t* d_w, int64_t rows, int64_t cols,
                const float* d_scale, float scale, const QuantOut& o) {
  const int64_t band = std::min<int64_t>(128, rows);
  const int64_t r0 = (rows / 128 / 2) * 128;  // a tile-aligned band in the middle
  const int64_t n = band * cols;
  std::vector<uint16_t> w(static_cast<size_t>(n));
  BENCH_CUDA(
      cudaMemcpy(w.data(), d_w + r0 * cols, static_cast<size_t>(n) * 2, cudaMemcpyDeviceToHost));
  if (fmt == "fp8") {
    std::vector<uint8_t> cpu(static_cast<size_t>(n)), gpu(static_cast<size_t>(n));
    BENCH_MQ(mq_cpu_quantize_fp8(w.data(), MQ_DTYPE_BF16, band, cols, &scale, 0, cpu.data()));
    BENCH_CUDA(cudaMemcpy(gpu.data(), o.a + r0 * cols, gpu.size(), cudaMemcpyDeviceToHost));
    (void)d_scale;
    return cpu == gpu;
  }
  if (fmt == "nvfp4") {
    std::vector<uint8_t> cp(static_cast<size_t>(n / 2)), cs(static_cast<size_t>(n / 16));
    std::vector<uint8_t> gp(cp.size()), gs(cs.size());
    BENCH_MQ(
        mq_cpu_quantize_nvfp4(w.data(), MQ_DTYPE_BF16, band, cols, scale, cp.data(), cs.data()));
    BENCH_CUDA(cudaMemcpy(gp.data(), o.a + r0 * cols / 2, gp.size(), cudaMemcpyDeviceToHost));
    BENCH_CUDA(cudaMemcpy(gs.data(), o.b + r0 * cols / 16, gs.size(), cudaMemcpyDeviceToHost));
    return cp == gp && cs == gs;
  }
  if (fmt == "fp8_block") {
    const int64_t tc = (cols + 127) / 128;
    std::vector<uint8_t> cq(static_cast<size_t>(n)), gq(cq.size());
    std::vector<float> cs(static_cast<size_t>(((band + 127) / 128) * tc)), gs(cs.size());
    BENCH_MQ(mq_cpu_quantize_fp8_block(w.data(), MQ_DTYPE_BF16, band, cols, cq.data(), cs.data()));
    BENCH_CUDA(cudaMemcpy(gq.data(), o.a + r0 * cols, gq.size(), cudaMemcpyDeviceToHost));
    BENCH_CUDA(
        cudaMemcpy(gs.data(), o.b + (r0 / 128) * tc * 4, gs.size() * 4, cudaMemcpyDeviceToHost));
    return cq == gq && cs == gs;
  }
  // int4: qweight [cols/8, rows] and scales [G, rows] hold the band as a column range
  const int64_t g = (cols + 127) / 128;
  std::vector<int32_t> cq(static_cast<size_t>(cols / 8 * band)), gq(cq.size());
  std::vector<uint16_t> cs(static_cast<size_t>(g * band)), gs(cs.size());
  std::vector<int32_t> cz(static_cast<size_t>(g * band / 8)), ci(static_cast<size_t>(cols));
  std::vector<int32_t> gz(static_cast<size_t>(g * rows / 8)), gi(ci.size());
  BENCH_MQ(mq_cpu_quantize_int4(w.data(), MQ_DTYPE_BF16, band, cols, cq.data(), cs.data(),
                                cz.data(), ci.data()));
  BENCH_CUDA(cudaMemcpy2D(gq.data(), band * 4, o.a + r0 * 4, rows * 4, band * 4, cols / 8,
                          cudaMemcpyDeviceToHost));
  BENCH_CUDA(cudaMemcpy2D(gs.data(), band * 2, o.b + r0 * 2, rows * 2, band * 2, g,
                          cudaMemcpyDeviceToHost));
  BENCH_CUDA(cudaMemcpy(gz.data(), o.z, gz.size() * 4, cudaMemcpyDeviceToHost));
  BENCH_CUDA(cudaMemcpy(gi.data(), o.g, gi.size() * 4, cudaMemcpyDeviceToHost));
  bool ok = cq == gq && cs == gs && ci == gi;
  for (const int32_t z : gz) ok = ok && z == 0x77777777;
  return ok;
}

// Two timings per format and shape: "one call" is one call between two events, repeated on the
// same buffers (for small shapes that is launch latency, and data that sits in L2); "stream" is
// the same call over K distinct input/output sets back to back (K sets of >= 256 MB in all, so
// nothing is served from L2), time per call: how an export runs through hundreds of experts.
void bench_gpu_quantize(const Options& opt, double copy_gbs, cudaStream_t s, Summary* sum) {
  const MatShape shapes[] = {{768, 2048}, {4096, 4096}, {8192, 8192}, {16384, 16384}};
  std::printf(
      "\n# quantize (GPU), bf16 input; ratio = (bytes read + written) / time over copy "
      "bandwidth (target >= 0.75);\n#   one call: one call timed alone, same buffers; stream: K "
      "calls back to back over K distinct sets (>= 256 MB), time per call;\n#   check: a 128-row "
      "band of every output against the CPU path\n");
  std::printf("# %-10s %14s %10s %10s %10s %8s %4s %10s %8s %6s\n", "format", "shape", "MB moved",
              "time(ms)", "GB/s", "vs copy", "K", "stream(ms)", "vs copy", "check");
  for (const MatShape& sh : shapes) {
    const int64_t rows = sh.rows, cols = sh.cols, n = rows * cols;
    const int sets = static_cast<int>(
        std::min<int64_t>(64, std::max<int64_t>(1, ((int64_t{256} << 20) + 3 * n - 1) / (3 * n))));
    std::vector<uint16_t*> ws(static_cast<size_t>(sets));
    for (int k = 0; k < sets; ++k) {
      ws[static_cast<size_t>(k)] = dev_alloc<uint16_t>(static_cast<size_t>(n) * 2);
      BENCH_CUDA(moequant::bench::fill_random_bf16(
          ws[static_cast<size_t>(k)], n, 1234 + static_cast<uint64_t>(rows) + 7919 * k, 0.05f, s));
    }
    uint16_t* w = ws[0];
    // the tensor's amax -> fp8 scale (device) and nvfp4 scale2 (host)
    float* d_amax = dev_alloc<float>(4);
    int32_t* d_flag = dev_alloc<int32_t>(4);
    BENCH_CUDA(cudaMemsetAsync(d_amax, 0, 4, s));
    BENCH_CUDA(cudaMemsetAsync(d_flag, 0, 4, s));
    mq_amax_item it{w, rows, cols, MQ_DTYPE_BF16, 0, 0};
    BENCH_MQ(mq_cuda_multi_amax(&it, 1, d_amax, d_flag, reinterpret_cast<mq_stream_t>(s)));
    float amax = 0.0f;
    BENCH_CUDA(cudaMemcpyAsync(&amax, d_amax, 4, cudaMemcpyDeviceToHost, s));
    BENCH_CUDA(cudaStreamSynchronize(s));
    const float fp8_scale = num::fp8_scale_from_amax(amax);
    const float scale2 = num::nvfp4_scale2_from_amax(amax);
    float* d_scale = dev_alloc<float>(4);
    BENCH_CUDA(cudaMemcpy(d_scale, &fp8_scale, 4, cudaMemcpyHostToDevice));
    const int64_t g = (cols + 127) / 128;
    std::vector<QuantOut> outs(static_cast<size_t>(sets));
    for (QuantOut& o : outs) {
      o.a = dev_alloc<uint8_t>(static_cast<size_t>(n));
      o.b = dev_alloc<uint8_t>(static_cast<size_t>(std::max(n / 16, g * rows * 2)));
      o.z = dev_alloc<int32_t>(static_cast<size_t>(g * rows / 8 * 4));
      o.g = dev_alloc<int32_t>(static_cast<size_t>(cols * 4));
    }
    const mq_stream_t ms = reinterpret_cast<mq_stream_t>(s);
    for (const char* fmt_c : kFormats) {
      const std::string fmt = fmt_c;
      if (!opt.formats.empty() &&
          ("," + opt.formats + ",").find("," + fmt + ",") == std::string::npos) {
        continue;
      }
      std::function<void(int)> call;
      if (fmt == "fp8") {
        call = [&](int k) {
          BENCH_MQ(mq_cuda_quantize_fp8(ws[static_cast<size_t>(k)], MQ_DTYPE_BF16, rows, cols,
                                        d_scale, 0, outs[static_cast<size_t>(k)].a, ms));
        };
      } else if (fmt == "nvfp4") {
        call = [&](int k) {
          const QuantOut& o = outs[static_cast<size_t>(k)];
          BENCH_MQ(mq_cuda_quantize_nvfp4(ws[static_cast<size_t>(k)], MQ_DTYPE_BF16, rows, cols,
                                          scale2, o.a, o.b, ms));
        };
      } else if (fmt == "fp8_block") {
        call = [&](int k) {
          const QuantOut& o = outs[static_cast<size_t>(k)];
          BENCH_MQ(mq_cuda_quantize_fp8_block(ws[static_cast<size_t>(k)], MQ_DTYPE_BF16, rows, cols,
                                              o.a, reinterpret_cast<float*>(o.b), ms));
        };
      } else {
        call = [&](int k) {
          const QuantOut& o = outs[static_cast<size_t>(k)];
          BENCH_MQ(mq_cuda_quantize_int4(ws[static_cast<size_t>(k)], MQ_DTYPE_BF16, rows, cols,
                                         reinterpret_cast<int32_t*>(o.a),
                                         reinterpret_cast<uint16_t*>(o.b), o.z, o.g, ms));
        };
      }
      const double t = time_gpu_ms([&] { call(0); }, opt.repeats, s);
      const double t_stream = sets == 1 ? t
                                        : time_gpu_ms(
                                              [&] {
                                                for (int k = 0; k < sets; ++k) call(k);
                                              },
                                              std::max(5, opt.repeats / 2), s, 1) /
                                              sets;
      const QuantOut& o = outs[0];
      BENCH_CUDA(cudaMemsetAsync(o.a, 0xa5, static_cast<size_t>(n), s));  // check fresh outputs
      call(0);
      BENCH_CUDA(cudaStreamSynchronize(s));
      const bool ok =
          band_check(fmt, w, rows, cols, d_scale, fmt == "nvfp4" ? scale2 : fp8_scale, o);
      const double moved = static_cast<double>(2 * n + written_bytes(fmt, rows, cols));
      const double gbs = moved / t / 1e6;
      const double gbs_stream = moved / t_stream / 1e6;
      char shape[32];
      std::snprintf(shape, sizeof shape, "%lldx%lld", static_cast<long long>(rows),
                    static_cast<long long>(cols));
      std::printf("  %-10s %14s %10.1f %10.3f %10.1f %8.3f %4d %10.4f %8.3f %6s\n", fmt.c_str(),
                  shape, moved / 1e6, t, gbs, gbs / copy_gbs, sets, t_stream, gbs_stream / copy_gbs,
                  check_word(ok));
      if (&sh == &shapes[3]) {
        char line[256];
        std::snprintf(line, sizeof line,
                      "quantize %s %s: %.3f of copy bandwidth (target >= 0.75): %s", fmt.c_str(),
                      shape, gbs / copy_gbs, gbs / copy_gbs >= 0.75 ? "MET" : "BELOW");
        sum->lines.push_back(line);
      }
    }
    for (uint16_t* p : ws) BENCH_CUDA(cudaFree(p));
    BENCH_CUDA(cudaFree(d_amax));
    BENCH_CUDA(cudaFree(d_flag));
    BENCH_CUDA(cudaFree(d_scale));
    for (QuantOut& o : outs) {
      BENCH_CUDA(cudaFree(o.a));
      BENCH_CUDA(cudaFree(o.b));
      BENCH_CUDA(cudaFree(o.z));
      BENCH_CUDA(cudaFree(o.g));
    }
  }
}

void run_gpu(const Options& opt) {
  if (!mq_cuda_available()) {
    std::printf("\n# GPU: no CUDA device visible, skipped\n");
    return;
  }
  int dev = 0;
  BENCH_CUDA(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  BENCH_CUDA(cudaGetDeviceProperties(&prop, dev));
  std::printf("\n# GPU: %s, %d SMs, %.0f MB L2\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize / 1e6);
  cudaStream_t s;
  BENCH_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const double copy_gbs = copy_bandwidth(opt.repeats, s);
  Summary sum;
  if (opt.amax) bench_gpu_amax(opt, copy_gbs, prop.multiProcessorCount, s, &sum);
  bench_gpu_quantize(opt, copy_gbs, s, &sum);
  std::printf("\n# summary (copy %.1f GB/s)\n", copy_gbs);
  for (const std::string& l : sum.lines) std::printf("#   %s\n", l.c_str());
  BENCH_CUDA(cudaStreamDestroy(s));
}

#endif  // MOEQUANT_HAS_CUDA

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--cpu-only | --gpu-only] [--layers N] [--cpu-mib N] [--repeats N] "
               "[--quant-only] [--formats fp8,nvfp4,fp8_block,int4]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--cpu-only") {
      opt.gpu = false;
    } else if (a == "--gpu-only") {
      opt.cpu = false;
    } else if (a == "--layers" && has_value) {
      opt.layers = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--cpu-mib" && has_value) {
      opt.cpu_mib = std::max(16, std::atoi(argv[++i]));
    } else if (a == "--repeats" && has_value) {
      opt.repeats = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--quant-only") {
      opt.amax = false;
    } else if (a == "--formats" && has_value) {
      opt.formats = argv[++i];
    } else {
      return usage(argv[0]);
    }
  }
  if (opt.cpu) run_cpu(opt);
#ifdef MOEQUANT_HAS_CUDA
  if (opt.gpu) run_gpu(opt);
#else
  if (opt.gpu) std::printf("\n# GPU: this build has no CUDA kernels, skipped\n");
#endif
  std::printf("\n# checks: %s\n", g_failed ? "FAILED" : "all OK");
  return g_failed ? 1 : 0;
}
