// Hot-loop helpers of the CPU kernels: function multiversioning and the split of the work.
//
// The build targets plain x86-64 (SSE2), which every user machine runs. A function marked
// MQ_CPU_HOT is compiled twice, for that baseline and for AVX2 (wider vectors for the same
// operations, no FMA), and the dynamic loader picks the clone for the running CPU once (an
// ifunc), so there is no per-call or per-element dispatch. Both clones execute the same IEEE
// float32 operations (add, subtract, multiply, true division, compares; no contraction, since
// neither target has FMA), so their bytes are identical. Elsewhere (other compilers or
// architectures) the attribute is empty and the baseline build is used.
#pragma once

#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__) && \
    !defined(MOEQUANT_NO_MULTIVERSION)
#define MQ_CPU_HOT __attribute__((target_clones("avx2", "default")))
#else
#define MQ_CPU_HOT
#endif

#if defined(__GNUC__)
#define MQ_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MQ_ALWAYS_INLINE inline
#endif

namespace moequant {
namespace kernels {

// Elements per unit of parallel work in the flat loops: large enough to amortize the call and
// the scheduling, small enough that one big tensor splits over every thread.
constexpr int64_t kChunkElements = int64_t{1} << 15;

// The number of threads an OpenMP parallel region started here will use.
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Rows per band for the int4 kernels, whose qweight [cols/8, rows] is written (or read) across
// the rows of a band: 64 (256 contiguous bytes of each qweight row), halved down to 16 (one
// cache line) while that leaves fewer than 4 bands per thread.
inline int64_t int4_band_rows(int64_t rows) {
  int64_t band = 64;
  while (band > 16 && (rows + band - 1) / band < 4 * int64_t{max_threads()}) band /= 2;
  return band;
}

// This thread's share [*begin, *end) of n work units inside an OpenMP parallel region: one
// contiguous range per thread, as schedule(static) gives, for loops that carry state from one
// unit to the next. Outside a parallel region (or without OpenMP), all of them.
inline void thread_range(int64_t n, int64_t* begin, int64_t* end) {
#ifdef _OPENMP
  const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
  const int64_t t = 0, nt = 1;
#endif
  *begin = n * t / nt;
  *end = n * (t + 1) / nt;
}

}  // namespace kernels
}  // namespace moequant
