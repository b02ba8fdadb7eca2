// Device helpers of bench_kernels: random bf16 data and the PyTorch-style per-tensor amax loop
// (torch.abs into a temporary, then torch.amax over it: two launches and three passes over the
// bytes per tensor), written plainly as the yardstick our one-launch kernel is compared with.
// Compiled with MOEQUANT_BENCH_KERNELS_GPU_MAIN it is also bench_kernels_gpu (end of the file).
#include <cuda_runtime.h>
#include <stdint.h>

#include "bench_kernels_gpu.h"

namespace moequant {
namespace bench {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

// Sum of four uniforms, centred: roughly normal, with a sign and no exact zeros in practice.
__global__ void fill_kernel(uint16_t* dst, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const uint64_t h = mix(seed ^ mix(static_cast<uint64_t>(i)));
    float u = 0.0f;
    for (int k = 0; k < 4; ++k)
      u += static_cast<float>((h >> (16 * k)) & 0xffffu) * (1.0f / 65536.0f);
    const float v = (u - 2.0f) * 1.7320508f * scale;
    dst[i] = static_cast<uint16_t>(__float_as_uint(v) >> 16);
  }
}

// torch.abs on bf16: elementwise, 16-byte vectors.
__global__ void abs_kernel(const uint4* src, uint4* dst, int64_t nvec) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < nvec;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    uint4 v = src[i];
    v.x &= 0x7fff7fffu;
    v.y &= 0x7fff7fffu;
    v.z &= 0x7fff7fffu;
    v.w &= 0x7fff7fffu;
    dst[i] = v;
  }
}

// torch.amax over a bf16 tensor of non-negative values: grid-stride max, then per block one
// atomicMax on the float's bits.
__global__ void amax_kernel(const uint4* src, int64_t nvec, float* out) {
  __shared__ float warp_max[kThreads / 32];
  float m = 0.0f;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < nvec;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const uint4 v = src[i];
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    for (int k = 0; k < 4; ++k) {
      m = fmaxf(m, __uint_as_float(w[k] << 16));
      m = fmaxf(m, __uint_as_float(w[k] & 0xffff0000u));
    }
  }
  for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 1; k < kThreads / 32; ++k) m = fmaxf(m, warp_max[k]);
    atomicMax(reinterpret_cast<int*>(out), __float_as_int(m));
  }
}

}  // namespace

cudaError_t fill_random_bf16(void* dst, int64_t n, uint64_t seed, float scale, cudaStream_t s) {
  fill_kernel<<<4096, kThreads, 0, s>>>(static_cast<uint16_t*>(dst), n, seed, scale);
  return cudaGetLastError();
}

cudaError_t torchlike_amax_loop(const void* const* tensors, const int64_t* numel, int count,
                                void* tmp, float* out, int sms, cudaStream_t s) {
  for (int i = 0; i < count; ++i) {
    const int64_t nvec = numel[i] / 8;  // bench shapes are multiples of 8 elements
    const int64_t want = (nvec + kThreads - 1) / kThreads;
    const int blocks = static_cast<int>(want < sms * 8 ? want : sms * 8);
    abs_kernel<<<blocks, kThreads, 0, s>>>(static_cast<const uint4*>(tensors[i]),
                                           static_cast<uint4*>(tmp), nvec);
    amax_kernel<<<blocks, kThreads, 0, s>>>(static_cast<const uint4*>(tmp), nvec, out + i);
  }
  return cudaGetLastError();
}

}  // namespace bench
}  // namespace moequant

// ==== bench_kernels_gpu: one launch per matrix vs one batched launch ==========================
//
//   bench_kernels_gpu [--repeats N] [--formats fp8,nvfp4,fp8_block,int4]
//
// For every format and stack (a Qwen3-30B-A3B MoE layer: 128 experts x gate, up [768, 2048] and
// down [2048, 768]; 8 experts of [1408, 2048] / [2048, 1408]; one 16384x16384 matrix) it times
// the per-matrix entry point called once per matrix and mq_cuda_quantize_batched called once,
// and a device-to-device copy of the same number of bytes (read + written) in the same run. The
// outputs of the two runs must be equal byte for byte (compared on the device), and the first
// and last matrix are checked against the CPU path. The process exits 1 when a check fails;
// ratios below the 0.75 target are reported, not fatal.
#ifdef MOEQUANT_BENCH_KERNELS_GPU_MAIN

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"

namespace {

namespace num = moequant::num;

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

// Bytes differing between two device buffers, added into *count.
__global__ void count_diff_kernel(const uint8_t* a, const uint8_t* b, size_t n,
                                  unsigned long long* count) {
  unsigned long long c = 0;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    c += a[i] != b[i];
  }
  if (c) atomicAdd(count, c);
}

bool g_failed = false;
const char* check_word(bool ok) {
  if (!ok) g_failed = true;
  return ok ? "OK" : "FAIL";
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Median time per call of f(): kCalls calls back to back between two events (so a call's
// descriptor upload and launch overlap the previous call's kernel, as in an export loop), after
// warm-up runs.
constexpr int kCalls = 4;
double time_ms(const std::function<void()>& f, int reps, cudaStream_t s) {
  cudaEvent_t a, b;
  BENCH_CUDA(cudaEventCreate(&a));
  BENCH_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < 2; ++i) f();
  BENCH_CUDA(cudaStreamSynchronize(s));
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    BENCH_CUDA(cudaEventRecord(a, s));
    for (int c = 0; c < kCalls; ++c) f();
    BENCH_CUDA(cudaEventRecord(b, s));
    BENCH_CUDA(cudaEventSynchronize(b));
    float ms = 0.0f;
    BENCH_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms / kCalls);
  }
  BENCH_CUDA(cudaEventDestroy(a));
  BENCH_CUDA(cudaEventDestroy(b));
  return median(t);
}

void* dev_alloc(size_t bytes) {
  void* p = nullptr;
  BENCH_CUDA(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
  return p;
}

struct Shape {
  int64_t rows, cols;
};

struct Stack {
  std::string name;
  std::vector<Shape> shapes;
};

const char* kFormatNames[] = {"fp8", "nvfp4", "fp8_block", "int4"};
const mq_format kFormatIds[] = {MQ_FORMAT_FP8, MQ_FORMAT_NVFP4, MQ_FORMAT_FP8_BLOCK,
                                MQ_FORMAT_INT4};

// Bytes of out, scales, qzeros, g_idx of one [rows, cols] matrix.
std::vector<size_t> out_sizes(mq_format f, int64_t rows, int64_t cols) {
  const size_t n = static_cast<size_t>(rows * cols), r = static_cast<size_t>(rows);
  const size_t tiles = static_cast<size_t>(((rows + 127) / 128) * ((cols + 127) / 128));
  const size_t g = static_cast<size_t>((cols + 127) / 128);
  switch (f) {
    case MQ_FORMAT_FP8:
      return {n, 0, 0, 0};
    case MQ_FORMAT_NVFP4:
      return {n / 2, n / 16, 0, 0};
    case MQ_FORMAT_FP8_BLOCK:
      return {n, tiles * 4, 0, 0};
    case MQ_FORMAT_INT4:
      return {n / 2, g * r * 2, g * r / 2, static_cast<size_t>(cols) * 4};
  }
  return {0, 0, 0, 0};
}

// One set of device outputs for a whole stack: one allocation per output kind, items end to end
// (each item's part 256-byte aligned, as separate allocations would be).
struct OutSet {
  std::vector<uint8_t*> base;                // per output kind
  std::vector<size_t> bytes;                 // per output kind
  std::vector<std::vector<size_t>> offsets;  // [kind][item]
  std::vector<std::vector<size_t>> sizes;    // [kind][item]
  void* at(size_t kind, size_t item) const {
    return sizes[kind][item] ? base[kind] + offsets[kind][item] : nullptr;
  }
};

OutSet alloc_outputs(mq_format f, const std::vector<Shape>& shapes) {
  OutSet o;
  o.base.assign(4, nullptr);
  o.bytes.assign(4, 0);
  o.offsets.assign(4, {});
  o.sizes.assign(4, {});
  for (const Shape& s : shapes) {
    const std::vector<size_t> z = out_sizes(f, s.rows, s.cols);
    for (size_t k = 0; k < 4; ++k) {
      o.offsets[k].push_back(o.bytes[k]);
      o.sizes[k].push_back(z[k]);
      o.bytes[k] += (z[k] + 255) / 256 * 256;
    }
  }
  for (size_t k = 0; k < 4; ++k) {
    if (o.bytes[k]) {
      o.base[k] = static_cast<uint8_t*>(dev_alloc(o.bytes[k]));
      BENCH_CUDA(cudaMemset(o.base[k], 0, o.bytes[k]));
    }
  }
  return o;
}

void free_outputs(OutSet* o) {
  for (uint8_t* p : o->base) {
    if (p) BENCH_CUDA(cudaFree(p));
  }
}

// Per-matrix call for item i.
mq_status call_one(mq_format f, const mq_quant_item& it, const float* d_scale, cudaStream_t s) {
  const mq_stream_t ms = reinterpret_cast<mq_stream_t>(s);
  switch (f) {
    case MQ_FORMAT_FP8:
      return mq_cuda_quantize_fp8(it.w, MQ_DTYPE_BF16, it.rows, it.cols, d_scale, 0,
                                  static_cast<uint8_t*>(it.out), ms);
    case MQ_FORMAT_NVFP4:
      return mq_cuda_quantize_nvfp4(it.w, MQ_DTYPE_BF16, it.rows, it.cols, it.scale,
                                    static_cast<uint8_t*>(it.out), static_cast<uint8_t*>(it.scales),
                                    ms);
    case MQ_FORMAT_FP8_BLOCK:
      return mq_cuda_quantize_fp8_block(it.w, MQ_DTYPE_BF16, it.rows, it.cols,
                                        static_cast<uint8_t*>(it.out),
                                        static_cast<float*>(it.scales), ms);
    case MQ_FORMAT_INT4:
      return mq_cuda_quantize_int4(it.w, MQ_DTYPE_BF16, it.rows, it.cols,
                                   static_cast<int32_t*>(it.out), static_cast<uint16_t*>(it.scales),
                                   it.qzeros, it.g_idx, ms);
  }
  return MQ_ERR_INVALID;
}

mq_status call_one_cpu(mq_format f, const mq_quant_item& it) {
  switch (f) {
    case MQ_FORMAT_FP8:
      return mq_cpu_quantize_fp8(it.w, MQ_DTYPE_BF16, it.rows, it.cols, &it.scale, 0,
                                 static_cast<uint8_t*>(it.out));
    case MQ_FORMAT_NVFP4:
      return mq_cpu_quantize_nvfp4(it.w, MQ_DTYPE_BF16, it.rows, it.cols, it.scale,
                                   static_cast<uint8_t*>(it.out), static_cast<uint8_t*>(it.scales));
    case MQ_FORMAT_FP8_BLOCK:
      return mq_cpu_quantize_fp8_block(it.w, MQ_DTYPE_BF16, it.rows, it.cols,
                                       static_cast<uint8_t*>(it.out),
                                       static_cast<float*>(it.scales));
    case MQ_FORMAT_INT4:
      return mq_cpu_quantize_int4(it.w, MQ_DTYPE_BF16, it.rows, it.cols,
                                  static_cast<int32_t*>(it.out), static_cast<uint16_t*>(it.scales),
                                  it.qzeros, it.g_idx);
  }
  return MQ_ERR_INVALID;
}

// Item i of the device stack quantized on the CPU and compared with the device outputs.
bool cpu_check(mq_format f, const mq_quant_item& dev) {
  const size_t n = static_cast<size_t>(dev.rows * dev.cols);
  std::vector<uint16_t> w(n);
  BENCH_CUDA(cudaMemcpy(w.data(), dev.w, n * 2, cudaMemcpyDeviceToHost));
  const std::vector<size_t> z = out_sizes(f, dev.rows, dev.cols);
  std::vector<std::vector<uint8_t>> cpu(4), gpu(4);
  void* dptr[4] = {dev.out, dev.scales, dev.qzeros, dev.g_idx};
  for (size_t k = 0; k < 4; ++k) {
    cpu[k].resize(z[k]);
    gpu[k].resize(z[k]);
    if (z[k]) BENCH_CUDA(cudaMemcpy(gpu[k].data(), dptr[k], z[k], cudaMemcpyDeviceToHost));
  }
  const mq_quant_item h{w.data(),
                        dev.rows,
                        dev.cols,
                        dev.scale,
                        cpu[0].data(),
                        z[1] ? cpu[1].data() : nullptr,
                        reinterpret_cast<int32_t*>(cpu[2].data()),
                        reinterpret_cast<int32_t*>(cpu[3].data())};
  if (call_one_cpu(f, h) != MQ_OK) return false;
  return cpu == gpu;
}

struct Options {
  int repeats = 10;
  std::string formats;
};

// One row: stack x format, per-matrix loop vs batched call vs copy of the same bytes.
void bench_row(const Options& opt, const Stack& st, mq_format f, const char* fname,
               const std::vector<void*>& w, const std::vector<float>& amax, cudaStream_t s,
               std::vector<std::string>* summary) {
  const size_t n = st.shapes.size();
  OutSet a = alloc_outputs(f, st.shapes), b = alloc_outputs(f, st.shapes);
  std::vector<float> scale(n);
  for (size_t i = 0; i < n; ++i) {
    scale[i] = f == MQ_FORMAT_NVFP4 ? num::nvfp4_scale2_from_amax(amax[i])
                                    : num::fp8_scale_from_amax(amax[i]);
  }
  float* d_scale = static_cast<float*>(dev_alloc(n * 4));
  BENCH_CUDA(cudaMemcpy(d_scale, scale.data(), n * 4, cudaMemcpyHostToDevice));
  std::vector<mq_quant_item> ia(n), ib(n);
  double moved = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const Shape& sh = st.shapes[i];
    for (int set = 0; set < 2; ++set) {
      const OutSet& o = set == 0 ? a : b;
      (set == 0 ? ia : ib)[i] = mq_quant_item{w[i],
                                              sh.rows,
                                              sh.cols,
                                              scale[i],
                                              o.at(0, i),
                                              o.at(1, i),
                                              static_cast<int32_t*>(o.at(2, i)),
                                              static_cast<int32_t*>(o.at(3, i))};
    }
    const std::vector<size_t> z = out_sizes(f, sh.rows, sh.cols);
    moved += 2.0 * static_cast<double>(sh.rows * sh.cols) +
             static_cast<double>(z[0] + z[1] + z[2] + z[3]);
  }
  const double t_loop = time_ms(
      [&] {
        for (size_t i = 0; i < n; ++i) BENCH_MQ(call_one(f, ia[i], d_scale + i, s));
      },
      opt.repeats, s);
  const double t_batch = time_ms(
      [&] {
        BENCH_MQ(mq_cuda_quantize_batched(f, MQ_DTYPE_BF16, ib.data(), static_cast<int32_t>(n),
                                          reinterpret_cast<mq_stream_t>(s)));
      },
      opt.repeats, s);
  // the yardstick: a copy moving the same bytes (read + written)
  const size_t half = static_cast<size_t>(moved / 2.0 + 15) / 16 * 16;
  void* src = dev_alloc(half);
  void* dst = dev_alloc(half);
  BENCH_CUDA(cudaMemsetAsync(src, 1, half, s));
  const double t_copy =
      time_ms([&] { BENCH_CUDA(cudaMemcpyAsync(dst, src, half, cudaMemcpyDeviceToDevice, s)); },
              opt.repeats, s);
  BENCH_CUDA(cudaFree(src));
  BENCH_CUDA(cudaFree(dst));

  // checks: fresh outputs of both runs equal byte for byte; first and last item against the CPU
  for (size_t k = 0; k < 4; ++k) {
    if (a.bytes[k]) BENCH_CUDA(cudaMemsetAsync(a.base[k], 0xa5, a.bytes[k], s));
    if (b.bytes[k]) BENCH_CUDA(cudaMemsetAsync(b.base[k], 0x5a, b.bytes[k], s));
  }
  for (size_t i = 0; i < n; ++i) BENCH_MQ(call_one(f, ia[i], d_scale + i, s));
  BENCH_MQ(mq_cuda_quantize_batched(f, MQ_DTYPE_BF16, ib.data(), static_cast<int32_t>(n),
                                    reinterpret_cast<mq_stream_t>(s)));
  unsigned long long* d_count = static_cast<unsigned long long*>(dev_alloc(8));
  BENCH_CUDA(cudaMemsetAsync(d_count, 0, 8, s));
  for (size_t k = 0; k < 4; ++k) {
    for (size_t i = 0; i < n; ++i) {
      if (!a.sizes[k][i]) continue;
      count_diff_kernel<<<256, 256, 0, s>>>(static_cast<const uint8_t*>(a.at(k, i)),
                                            static_cast<const uint8_t*>(b.at(k, i)), a.sizes[k][i],
                                            d_count);
    }
  }
  BENCH_CUDA(cudaGetLastError());
  unsigned long long diff = 0;
  BENCH_CUDA(cudaMemcpyAsync(&diff, d_count, 8, cudaMemcpyDeviceToHost, s));
  BENCH_CUDA(cudaStreamSynchronize(s));
  BENCH_CUDA(cudaFree(d_count));
  const bool same = diff == 0;
  const bool cpu_ok = cpu_check(f, ib[0]) && cpu_check(f, ib[n - 1]);

  const double gbs_loop = moved / t_loop / 1e6, gbs_batch = moved / t_batch / 1e6;
  const double gbs_copy = moved / t_copy / 1e6;
  std::printf("  %-10s %-22s %5zu %9.1f %9.3f %8.1f %6.3f %9.3f %8.1f %6.3f %7.1fx %7s %6s\n",
              fname, st.name.c_str(), n, moved / 1e6, t_loop, gbs_loop, gbs_loop / gbs_copy,
              t_batch, gbs_batch, gbs_batch / gbs_copy, t_loop / t_batch, check_word(same),
              check_word(cpu_ok));
  char line[256];
  std::snprintf(line, sizeof line,
                "%-10s %-22s batched %.3f of copy (target >= 0.75): %s; %.1fx one launch per "
                "matrix; batched == per-matrix: %s",
                fname, st.name.c_str(), gbs_batch / gbs_copy,
                gbs_batch / gbs_copy >= 0.75 ? "MET" : "BELOW", t_loop / t_batch,
                same && cpu_ok ? "PASS" : "FAIL");
  summary->push_back(line);
  BENCH_CUDA(cudaFree(d_scale));
  free_outputs(&a);
  free_outputs(&b);
}

int run(const Options& opt) {
  if (!mq_cuda_available()) {
    std::printf("# bench_kernels_gpu: no CUDA device visible, nothing to measure\n");
    return 0;
  }
  int dev = 0;
  BENCH_CUDA(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  BENCH_CUDA(cudaGetDeviceProperties(&prop, dev));
  std::printf("# GPU: %s, %d SMs, %.0f MB L2\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize / 1e6);
  cudaStream_t s;
  BENCH_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));

  std::vector<Stack> stacks;
  {
    Stack q{"qwen3-30b-a3b layer", {}};
    for (int e = 0; e < 128; ++e)
      q.shapes.insert(q.shapes.end(), {{768, 2048}, {768, 2048}, {2048, 768}});
    stacks.push_back(q);
    Stack m{"8 x 1408x2048 experts", {}};
    for (int e = 0; e < 8; ++e)
      m.shapes.insert(m.shapes.end(), {{1408, 2048}, {1408, 2048}, {2048, 1408}});
    stacks.push_back(m);
    stacks.push_back(Stack{"16384x16384", {{16384, 16384}}});
  }
  std::printf(
      "# bf16 input. bytes = read + written; GB/s = bytes / time; 'vs copy' = that over a\n"
      "# device-to-device copy of the same bytes timed in this run (target >= 0.75).\n"
      "# per-matrix: one mq_cuda_quantize_<format> call per matrix (int4 waits once per call);\n"
      "# batched: one mq_cuda_quantize_batched call (int4: waits once). Times are per call of the\n"
      "# whole stack, 4 calls back to back per sample. same: both runs' outputs equal byte for "
      "byte\n"
      "# (compared on the device); cpu: first and last matrix equal the CPU path.\n");
  std::printf("# %-10s %-22s %5s %9s %9s %8s %6s %9s %8s %6s %8s %7s %6s\n", "format", "stack",
              "mats", "MB", "loop(ms)", "GB/s", "vscopy", "batch(ms)", "GB/s", "vscopy", "speedup",
              "same", "cpu");
  std::vector<std::string> summary;
  for (const Stack& st : stacks) {
    std::vector<void*> w;
    std::vector<mq_amax_item> amax_items;
    for (size_t i = 0; i < st.shapes.size(); ++i) {
      const int64_t n = st.shapes[i].rows * st.shapes[i].cols;
      w.push_back(dev_alloc(static_cast<size_t>(n) * 2));
      BENCH_CUDA(moequant::bench::fill_random_bf16(w.back(), n, 977 + 131 * i, 0.05f, s));
      amax_items.push_back(mq_amax_item{w.back(), st.shapes[i].rows, st.shapes[i].cols,
                                        MQ_DTYPE_BF16, static_cast<int32_t>(i), 0});
    }
    const size_t n = st.shapes.size();
    float* d_amax = static_cast<float*>(dev_alloc(n * 4));
    int32_t* d_flag = static_cast<int32_t*>(dev_alloc(n * 4));
    BENCH_CUDA(cudaMemsetAsync(d_amax, 0, n * 4, s));
    BENCH_CUDA(cudaMemsetAsync(d_flag, 0, n * 4, s));
    BENCH_MQ(mq_cuda_multi_amax(amax_items.data(), static_cast<int32_t>(n), d_amax, d_flag,
                                reinterpret_cast<mq_stream_t>(s)));
    std::vector<float> amax(n);
    BENCH_CUDA(cudaMemcpyAsync(amax.data(), d_amax, n * 4, cudaMemcpyDeviceToHost, s));
    BENCH_CUDA(cudaStreamSynchronize(s));
    for (size_t k = 0; k < 4; ++k) {
      if (!opt.formats.empty() &&
          ("," + opt.formats + ",").find("," + std::string(kFormatNames[k]) + ",") ==
              std::string::npos) {
        continue;
      }
      bench_row(opt, st, kFormatIds[k], kFormatNames[k], w, amax, s, &summary);
    }
    for (void* p : w) BENCH_CUDA(cudaFree(p));
    BENCH_CUDA(cudaFree(d_amax));
    BENCH_CUDA(cudaFree(d_flag));
  }
  std::printf("\n# summary\n");
  for (const std::string& l : summary) std::printf("#   %s\n", l.c_str());
  std::printf("# checks: %s\n", g_failed ? "FAIL" : "PASS");
  BENCH_CUDA(cudaStreamDestroy(s));
  return g_failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--repeats" && i + 1 < argc) {
      opt.repeats = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--formats" && i + 1 < argc) {
      opt.formats = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--repeats N] [--formats fp8,nvfp4,fp8_block,int4]\n",
                   argv[0]);
      return 2;
    }
  }
  return run(opt);
}

#endif  // MOEQUANT_BENCH_KERNELS_GPU_MAIN
