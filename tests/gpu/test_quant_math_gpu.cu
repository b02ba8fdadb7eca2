// The device fast paths of src/kernels/cuda/quant_math.cuh against numerics.h (compiled for the
// device: the same source the CPU path runs) and IEEE division, on the GPU:
//   - e4m3 (hardware cvt + sign from the input), e2m1, float16: every one of the 2^32 floats;
//   - int4 codes: every float quotient (NaN excluded);
//   - fast_div: every bf16 dividend against 2^14 divisors (log-uniform over the whole proven
//     range [2^-60, 2^60], plus powers of two and their neighbours), and 2^31 random float pairs,
//     bit-equal to `a / b` wherever |a / b| is in [2^-20, 2^20], and the out-of-range promises
//     (tiny: small with a's sign; huge: large or NaN) elsewhere;
//   - the packed bf16x2 / f16x2 operations of the nvfp4 table path (nvfp4_table.cuh): compares
//     and max over every pair of 16-bit magnitudes, the sign test over every 16-bit pattern;
//   - the nvfp4 table codes: for thousands of scale2 values, every usable scale code and every
//     16-bit input, the code equals num::float_to_e2m1(x / d).
// Each kernel counts mismatches and records the first one; the tests print it on failure.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "cuda/nvfp4_table.cuh"
#include "cuda/quant_math.cuh"
#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"

namespace {

namespace num = moequant::num;
using namespace moequant::kernels::cuda;

struct Mismatch {
  unsigned long long count;
  unsigned long long first;  // min over mismatching inputs of a per-test key
  unsigned int got, want;
};

__device__ void record(Mismatch* m, unsigned long long key, unsigned int got, unsigned int want) {
  atomicAdd(&m->count, 1ull);
  if (atomicMin(&m->first, key) > key) {  // best effort: the fields of the smallest key
    m->got = got;
    m->want = want;
  }
}

// Every 32-bit pattern x (NaN excluded where the rule excludes it).
__global__ void e4m3_all(Mismatch* m, uint32_t hi) {
  const uint32_t base = hi << 24;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < (1u << 24);
       i += gridDim.x * blockDim.x) {
    const uint32_t bits = base | i;
    const float x = __uint_as_float(bits);
    if (x != x) continue;
    const uint32_t hw = e4m3x4_hw(x, 1.0f, -2.0f, 448.0f);
    const uint32_t got = e4m3_with_signs(hw, (bits >> 24) | 0x80000000u) & 0xffu;
    const uint32_t want = num::float_to_e4m3(x);
    if (got != want) record(m, bits, got, want);
    if (e4m3_nan_bits(hw) & 0x80808080u) record(m, bits, 0x7f, 0);  // no NaN from a number
    if (x > 0.0f && e4m3_positive_hw(x) != want) record(m, bits, e4m3_positive_hw(x), want);
  }
}

// Every e4m3 code but the two NaNs: the hardware decode equals numerics.h.
__global__ void e4m3_decode_all(Mismatch* m) {
  const uint32_t c = threadIdx.x;
  if ((c & 0x7fu) == 0x7fu) return;
  const float got = e4m3_value_hw(c), want = num::e4m3_to_float(static_cast<uint8_t>(c));
  if (__float_as_uint(got) != __float_as_uint(want)) {
    record(m, c, __float_as_uint(got), __float_as_uint(want));
  }
}

__global__ void e2m1_all(Mismatch* m, uint32_t hi) {
  const uint32_t base = hi << 24;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < (1u << 24);
       i += gridDim.x * blockDim.x) {
    const uint32_t bits = base | i;
    const float y = __uint_as_float(bits);
    if (y != y || bits == 0x80000000u) continue;  // NaN and -0.0 are outside the contract
    const uint32_t got = e2m1_code_magic(y) - kE2m1MagicBits;
    const uint32_t want = num::float_to_e2m1(y);
    if (got != want) record(m, bits, got, want);
  }
}

__global__ void half_all(Mismatch* m, uint32_t hi) {
  const uint32_t base = hi << 24;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < (1u << 24);
       i += gridDim.x * blockDim.x) {
    const uint32_t bits = base | i;
    const float x = __uint_as_float(bits);
    bool of_got = false, of_want = false;
    const uint32_t got = float_to_half_hw(x, &of_got);
    const uint32_t want = num::float_to_half(x, &of_want);
    if (got != want || of_got != of_want)
      record(m, bits, got | (of_got << 16), want | (of_want << 16));
  }
}

// int4: every float quotient q (NaN excluded) as `w / 1.0f`; the code must equal int4_code(q, 1).
__global__ void int4_all(Mismatch* m, uint32_t hi) {
  const uint32_t base = hi << 24;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < (1u << 24);
       i += gridDim.x * blockDim.x) {
    const uint32_t bits = base | i;
    const float q = __uint_as_float(bits);
    if (q != q) continue;
    const uint32_t got = int4_code_magic(q) - kE2m1MagicBits;
    const uint32_t want = num::int4_code(q, 1.0f);
    if (got != want) record(m, bits, got, want);
  }
}

__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

// Checks fast_div(a, b, __frcp_rn(b)) against a / b under the contract of quant_math.cuh.
__device__ void check_div(Mismatch* m, float a, float b, unsigned long long key) {
  if (!fast_div_ok(b) || a != a || !isfinite(a)) return;
  const float y = __frcp_rn(b);
  const float got = fast_div(a, b, y);
  const float want = a / b;
  const float aw = fabsf(want);
  bool good;
  if (aw >= 0x1p-20f && aw <= 0x1p20f) {
    good = __float_as_uint(got) == __float_as_uint(want);
  } else if (fabsf(a / b) < 0x1p-20f) {  // tiny: small, and the sign of a unless a is -0
    const bool sign_ok = (a == 0.0f) ? __float_as_uint(got) == 0u
                                     : ((__float_as_uint(got) ^ __float_as_uint(a)) >> 31) == 0;
    good = fabsf(got) < 0x1p-19f && sign_ok;
  } else {  // huge: large or NaN
    good = got != got || fabsf(got) > 0x1p19f;
  }
  if (!good) record(m, key, __float_as_uint(got), __float_as_uint(want));
}

// Divisor k of 2^14: log-uniform over [2^-60, 2^60]; every 16th an exact power of two or a
// neighbour of one.
__device__ float divisor(uint32_t k) {
  const uint64_t h = mix64(0x9e3779b97f4a7c15ull * (k + 1));
  if (k % 16 == 0) {
    const int e = static_cast<int>(h % 121) - 60;
    float p = ldexpf(1.0f, e);
    if ((h >> 8) % 3 == 1) p = __uint_as_float(__float_as_uint(p) + 1);
    if ((h >> 8) % 3 == 2) p = __uint_as_float(__float_as_uint(p) - 1);
    return fminf(fmaxf(p, 0x1p-60f), 0x1p60f);
  }
  const float e = -60.0f + 120.0f * static_cast<float>(h >> 40) * 0x1p-24f;
  const float mant = __uint_as_float(0x3f800000u | static_cast<uint32_t>(h & 0x7fffffu));
  return fminf(fmaxf(ldexpf(mant, static_cast<int>(floorf(e))), 0x1p-60f), 0x1p60f);
}

// All bf16 dividends (x 2^14 divisors in the grid's y dimension).
__global__ void div_bf16(Mismatch* m) {
  const float b = divisor(blockIdx.y);
  for (uint32_t i = threadIdx.x; i < 65536; i += blockDim.x) {
    check_div(m, __uint_as_float(i << 16), b,
              (static_cast<unsigned long long>(blockIdx.y) << 16) | i);
  }
}

// Random float pairs: a with a random sign and mantissa and an exponent putting a / b within
// 2^-24 .. 2^24 of 1 (plus the whole float range every 8th pair).
__global__ void div_random(Mismatch* m, uint64_t seed, uint64_t count) {
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t h = mix64(seed ^ mix64(i));
    const float b = divisor(static_cast<uint32_t>(h >> 48));
    const uint64_t h2 = mix64(h);
    float a;
    if (i % 8 == 0) {
      a = __uint_as_float(static_cast<uint32_t>(h2));
    } else {
      const int e = static_cast<int>((h2 >> 32) % 49) - 24;
      const float mant = __uint_as_float(0x3f800000u | static_cast<uint32_t>(h2 & 0x7fffffu));
      a = ldexpf(mant, e) * b;  // near b * 2^e, then rounded: any float near there
      a = __uint_as_float(__float_as_uint(a) ^ (static_cast<uint32_t>(h2 >> 63) << 31));
    }
    check_div(m, a, b, i);
  }
}

// ---- nvfp4 table path ----------------------------------------------------------------------

// Value order of two 16-bit magnitudes (sign clear) of dtype D; NaN compares false.
template <mq_dtype D>
__device__ bool mag_ge(uint32_t a, uint32_t b) {
  if (a > DType<D>::kInf || b > DType<D>::kInf) return false;
  return a >= b;  // non-negative IEEE values order like their bits
}

// Every pair of magnitudes (a, b), a in the grid's x and y dimensions, b over the threads; the
// high lane holds (b, a) so both lanes see every pair.
template <mq_dtype D>
__global__ void packed_pairs(Mismatch* m) {
  const uint32_t a = blockIdx.x * 256 + blockIdx.y;  // 2^15 magnitudes: grid (128, 256)
  for (uint32_t b = threadIdx.x; b < 0x8000u; b += blockDim.x) {
    const uint32_t x = a | (b << 16), y = b | (a << 16);
    const uint32_t ge = set_ge_x2<D>(x, y);
    const uint32_t one = D == MQ_DTYPE_BF16 ? 0x3f80u : 0x3c00u;
    const uint32_t want_ge = (mag_ge<D>(a, b) ? one : 0u) | ((mag_ge<D>(b, a) ? one : 0u) << 16);
    if (ge != want_ge) record(m, (static_cast<unsigned long long>(a) << 16) | b, ge, want_ge);
    const uint32_t mx = max_nan_x2<D>(x, y);
    const bool nan = a > DType<D>::kInf || b > DType<D>::kInf;
    const uint32_t lo = mx & 0xffffu, hi = mx >> 16;
    const bool mx_ok =
        nan ? (lo > DType<D>::kInf && hi > DType<D>::kInf) : (lo == max(a, b) && hi == max(a, b));
    if (!mx_ok) record(m, (1ull << 40) | (static_cast<unsigned long long>(a) << 16) | b, mx, 0);
  }
}

// Every 16-bit pattern x: [x < 0] is 1.0 exactly for negative non-NaN x other than -0.
template <mq_dtype D>
__global__ void packed_sign(Mismatch* m) {
  const uint32_t x = blockIdx.x * blockDim.x + threadIdx.x;  // 65536 threads
  const uint32_t one = D == MQ_DTYPE_BF16 ? 0x3f80u : 0x3c00u;
  const bool neg = (x & 0x8000u) && (x & 0x7fffu) != 0 && (x & 0x7fffu) <= DType<D>::kInf;
  const uint32_t got = set_lt_x2<D>(x | (x << 16), 0u);
  const uint32_t want = neg ? (one | (one << 16)) : 0u;
  if (got != want) record(m, x, got, want);
}

// Deterministic scale2 number i: log-uniform over [2^-70, 2^70], every 8th a power of two or a
// neighbour of one.
__device__ float scale2_of(uint32_t i) {
  const uint64_t h = mix64(0x51ed270b27a3c5a1ull * (i + 1));
  const int e = static_cast<int>(h % 141) - 70;
  float v = ldexpf(__uint_as_float(0x3f800000u | static_cast<uint32_t>((h >> 8) & 0x7fffffu)), e);
  if (i % 8 == 0) {
    v = ldexpf(1.0f, e);
    if ((h >> 40) % 3 == 1) v = __uint_as_float(__float_as_uint(v) + 1);
    if ((h >> 40) % 3 == 2) v = __uint_as_float(__float_as_uint(v) - 1);
  }
  return v;
}

// Block (s, c): table row of scale code c for scale2 number s, then every 16-bit input x: the
// table code must be num::float_to_e2m1(x / d). Rows the table marks unusable are skipped (the
// kernel takes the exact path for them) and counted in `usable` otherwise.
template <mq_dtype D>
__global__ void table_codes(Mismatch* m, unsigned long long* usable) {
  __shared__ uint32_t row[kNvfp4TableWords];
  const float scale2 = scale2_of(blockIdx.x);
  const int code = static_cast<int>(blockIdx.y) + 1;  // 1..126
  if (threadIdx.x < kNvfp4TableWords) {
    row[threadIdx.x] = nvfp4_table_word<D>(code, static_cast<int>(threadIdx.x), scale2);
  }
  __syncthreads();
  if (row[kNvfp4TableWords - 1] == 0u) return;
  if (threadIdx.x == 0) atomicAdd(usable, 1ull);
  const uint32_t t[7] = {row[0], row[1], row[2], row[3], row[4], row[5], row[6]};
  const float d = num::e4m3_to_float(static_cast<uint8_t>(code)) * scale2;
  for (uint32_t x0 = threadIdx.x * 8; x0 < 65536u; x0 += blockDim.x * 8) {
    const uint4 v = make_uint4(x0 | ((x0 + 1) << 16), (x0 + 2) | ((x0 + 3) << 16),
                               (x0 + 4) | ((x0 + 5) << 16), (x0 + 6) | ((x0 + 7) << 16));
    const uint32_t got = nvfp4_codes_from_table<D>(v, t);
    for (uint32_t k = 0; k < 8; ++k) {
      const uint32_t x = x0 + k;
      if ((x & 0x7fffu) > DType<D>::kInf) continue;  // NaN: the exact path's
      const uint32_t want = num::float_to_e2m1(DType<D>::to_float(x) / d);
      const uint32_t g = (got >> (4 * k)) & 0xfu;
      if (g != want) {
        record(m, (static_cast<unsigned long long>(blockIdx.x) << 32) | (code << 16) | x, g, want);
      }
    }
  }
}

#define CUDA_OK(call) ASSERT_EQ(cudaSuccess, (call)) << #call

class QuantMath : public ::testing::Test {
 protected:
  void SetUp() override {
    if (mq_cuda_available() == 0) GTEST_SKIP() << "no CUDA device";
    ASSERT_EQ(cudaSuccess, cudaMalloc(&m_, sizeof(Mismatch)));
    reset();
  }
  void TearDown() override {
    if (m_) cudaFree(m_);
  }
  void reset() {
    const Mismatch init{0, ~0ull, 0, 0};
    ASSERT_EQ(cudaSuccess, cudaMemcpy(m_, &init, sizeof init, cudaMemcpyHostToDevice));
  }
  Mismatch result() {
    Mismatch h{};
    EXPECT_EQ(cudaSuccess, cudaDeviceSynchronize());
    EXPECT_EQ(cudaSuccess, cudaMemcpy(&h, m_, sizeof h, cudaMemcpyDeviceToHost));
    return h;
  }
  template <typename K>
  void all_floats(K kernel, const char* what) {
    for (uint32_t hi = 0; hi < 256; ++hi) kernel<<<1024, 256>>>(m_, hi);
    CUDA_OK(cudaGetLastError());
    const Mismatch r = result();
    EXPECT_EQ(r.count, 0u) << what << ": " << r.count << " mismatches; first input bits 0x"
                           << std::hex << r.first << ": got 0x" << r.got << " want 0x" << r.want;
  }
  Mismatch* m_ = nullptr;
};

TEST_F(QuantMath, E4m3HardwareEqualsNumericsOnEveryFloat) {
  all_floats(e4m3_all, "e4m3");
}
TEST_F(QuantMath, E4m3HardwareDecodeEqualsNumerics) {
  e4m3_decode_all<<<1, 256>>>(m_);
  CUDA_OK(cudaGetLastError());
  const Mismatch r = result();
  EXPECT_EQ(r.count, 0u) << "e4m3 decode: first code 0x" << std::hex << r.first << ": got 0x"
                         << r.got << " want 0x" << r.want;
}
TEST_F(QuantMath, E2m1EqualsNumericsOnEveryFloat) {
  all_floats(e2m1_all, "e2m1");
}
TEST_F(QuantMath, HalfHardwareEqualsNumericsOnEveryFloat) {
  all_floats(half_all, "float16");
}
TEST_F(QuantMath, Int4CodeEqualsNumericsOnEveryFloat) {
  all_floats(int4_all, "int4");
}

TEST_F(QuantMath, FastDivEqualsIeeeDivision) {
  div_bf16<<<dim3(1, 1 << 14), 256>>>(m_);
  CUDA_OK(cudaGetLastError());
  Mismatch r = result();
  EXPECT_EQ(r.count, 0u) << "bf16 / divisor: " << r.count << " mismatches; first (divisor "
                         << (r.first >> 16) << ", bf16 0x" << std::hex << (r.first & 0xffff)
                         << "): got 0x" << r.got << " want 0x" << r.want;
  reset();
  div_random<<<4096, 256>>>(m_, 0x1234567ull, 1ull << 31);
  CUDA_OK(cudaGetLastError());
  r = result();
  EXPECT_EQ(r.count, 0u) << "random pairs: " << r.count << " mismatches; first pair " << r.first
                         << ": got 0x" << std::hex << r.got << " want 0x" << r.want;
}

template <mq_dtype D>
void check_packed_ops(Mismatch* m, const char* name) {
  packed_pairs<D><<<dim3(128, 256), 256>>>(m);
  ASSERT_EQ(cudaSuccess, cudaGetLastError());
  packed_sign<D><<<256, 256>>>(m);
  ASSERT_EQ(cudaSuccess, cudaGetLastError());
  Mismatch r{};
  ASSERT_EQ(cudaSuccess, cudaDeviceSynchronize());
  ASSERT_EQ(cudaSuccess, cudaMemcpy(&r, m, sizeof r, cudaMemcpyDeviceToHost));
  EXPECT_EQ(r.count, 0u) << name << ": " << r.count << " mismatches; first key 0x" << std::hex
                         << r.first << ": got 0x" << r.got << " want 0x" << r.want;
}

TEST_F(QuantMath, PackedCompareMaxAndSignOnEveryInput) {
  check_packed_ops<MQ_DTYPE_BF16>(m_, "bf16x2");
  reset();
  check_packed_ops<MQ_DTYPE_F16>(m_, "f16x2");
}

template <mq_dtype D>
void check_table_codes(Mismatch* m, const char* name) {
  constexpr unsigned kScales = 2048;
  unsigned long long* usable = nullptr;
  ASSERT_EQ(cudaSuccess, cudaMalloc(&usable, sizeof(*usable)));
  ASSERT_EQ(cudaSuccess, cudaMemset(usable, 0, sizeof(*usable)));
  table_codes<D><<<dim3(kScales, 126), 256>>>(m, usable);
  ASSERT_EQ(cudaSuccess, cudaGetLastError());
  Mismatch r{};
  unsigned long long rows = 0;
  ASSERT_EQ(cudaSuccess, cudaDeviceSynchronize());
  ASSERT_EQ(cudaSuccess, cudaMemcpy(&r, m, sizeof r, cudaMemcpyDeviceToHost));
  ASSERT_EQ(cudaSuccess, cudaMemcpy(&rows, usable, sizeof rows, cudaMemcpyDeviceToHost));
  cudaFree(usable);
  std::printf(
      "[ nvfp4 table %s ] %llu of %u (scale2, code) rows usable, each checked on all "
      "65536 inputs\n",
      name, rows, kScales * 126);
  EXPECT_GT(rows, kScales * 126ull / 2) << name;  // most of the range is the fast path
  EXPECT_EQ(r.count, 0u) << name << ": " << r.count << " mismatches; first (scale2 #"
                         << (r.first >> 32) << ", code " << ((r.first >> 16) & 0xffff)
                         << ", input 0x" << std::hex << (r.first & 0xffff) << "): got 0x" << r.got
                         << " want 0x" << r.want;
}

TEST_F(QuantMath, Nvfp4TableCodesEqualNumericsForEveryInput) {
  check_table_codes<MQ_DTYPE_BF16>(m_, "bf16");
  reset();
  check_table_codes<MQ_DTYPE_F16>(m_, "f16");
}

}  // namespace
