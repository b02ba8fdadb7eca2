// Reading an input weight of any mq_dtype as float32, with the dtype resolved once per call
// (not once per element) so the inner loops are plain, inlinable code: the scalar readers
// (error paths) and the Input structs of the vectorized loops.
#pragma once

#include <stdint.h>
#include <string.h>

#include <string>

#include "../enum_args.h"

#include "moequant/kernels/kernels.h"
#include "moequant/kernels/numerics.h"
#include "status.h"

namespace moequant {
namespace kernels {

struct Bf16Reader {
  const uint16_t* data;
  float operator()(int64_t i) const { return num::bf16_to_float(data[i]); }
};

struct F16Reader {
  const uint16_t* data;
  float operator()(int64_t i) const { return num::half_to_float(data[i]); }
};

struct F32Reader {
  const float* data;
  float operator()(int64_t i) const { return data[i]; }
};

// ---- inputs of the vectorized loops --------------------------------------------------------
//
// One struct per dtype, used as a template argument by the hot loops (never called through a
// pointer): `Raw` is the stored element, `to_float` its float32 value (branch-free, so loops
// vectorize), and `key` an integer whose order is the order of |value| (the magnitude bits:
// for non-negative IEEE values the order of the bit patterns is the order of the values), with
// NaN mapped to 0. A max over keys is therefore max|w| skipping NaN, exactly what the scalar
// `m = a > m ? a : m` loop computes (a NaN compares false and is skipped). `key_value` turns a
// max key back into that float. 16-bit inputs keep 16-bit keys: twice the lanes per vector.
// `load_pair(w, j)` loads elements 2j and 2j + 1 in one word (one 32-bit load for 16-bit
// inputs), `pair_lo` / `pair_hi` give their float32 values: nibble packers then compute a
// whole output byte per lane, with no de-interleaving.

// Two consecutive elements as one word, the first in its low half, on any byte order.
template <typename Word>
inline Word load_pair_word(const void* p) {
  Word v;
  memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = (v >> (4 * sizeof v)) | (v << (4 * sizeof v));
#endif
  return v;
}

struct Bf16Input {
  using Raw = uint16_t;
  using Key = int16_t;
  static float to_float(uint16_t v) { return num::bf16_to_float(v); }
  static int16_t key(uint16_t v) {
    const int16_t k = static_cast<int16_t>(v & 0x7fffu);
    return k > 0x7f80 ? int16_t{0} : k;
  }
  static float key_value(int16_t k) { return num::bf16_to_float(static_cast<uint16_t>(k)); }
  using Pair = uint32_t;
  static Pair load_pair(const uint16_t* w, int64_t j) { return load_pair_word<Pair>(w + 2 * j); }
  static float pair_lo(Pair p) { return num::bits_float(p << 16); }
  static float pair_hi(Pair p) { return num::bits_float(p & 0xffff0000u); }
};

struct F16Input {
  using Raw = uint16_t;
  using Key = int16_t;
  static float to_float(uint16_t v) { return num::half_to_float_simd(v); }
  static int16_t key(uint16_t v) {
    const int16_t k = static_cast<int16_t>(v & 0x7fffu);
    return k > 0x7c00 ? int16_t{0} : k;
  }
  static float key_value(int16_t k) { return num::half_to_float_simd(static_cast<uint16_t>(k)); }
  using Pair = uint32_t;
  static Pair load_pair(const uint16_t* w, int64_t j) { return load_pair_word<Pair>(w + 2 * j); }
  static float pair_lo(Pair p) { return num::half_to_float_simd(static_cast<uint16_t>(p)); }
  static float pair_hi(Pair p) { return num::half_to_float_simd(static_cast<uint16_t>(p >> 16)); }
};

struct F32Input {
  using Raw = float;
  using Key = int32_t;
  static float to_float(float v) { return v; }
  static int32_t key(float v) {
    const int32_t k = static_cast<int32_t>(num::float_bits(v) & 0x7fffffffu);
    return k > 0x7f800000 ? 0 : k;
  }
  static float key_value(int32_t k) { return num::bits_float(static_cast<uint32_t>(k)); }
  using Pair = uint64_t;
  static Pair load_pair(const float* w, int64_t j) { return load_pair_word<Pair>(w + 2 * j); }
  static float pair_lo(Pair p) { return num::bits_float(static_cast<uint32_t>(p)); }
  static float pair_hi(Pair p) { return num::bits_float(static_cast<uint32_t>(p >> 32)); }
};

// Calls `body(input)` with a value of the Input struct for `dtype` and returns its status; an
// unknown dtype is MQ_ERR_INVALID naming `fn`.
template <typename Body>
mq_status with_input(const char* fn, const mq_dtype& dtype, Body&& body) {
  switch (raw_value(dtype)) {  // the integer: an unknown value is never loaded as the enum
    case MQ_DTYPE_BF16:
      return body(Bf16Input{});
    case MQ_DTYPE_F16:
      return body(F16Input{});
    case MQ_DTYPE_F32:
      return body(F32Input{});
  }
  return set_error(MQ_ERR_INVALID,
                   std::string(fn) + ": unknown dtype " + std::to_string(raw_value(dtype)));
}

// Calls `body(reader)` with the reader for `dtype` and returns its status; an unknown dtype is
// MQ_ERR_INVALID naming `fn`.
template <typename Body>
mq_status with_reader(const char* fn, const void* w, const mq_dtype& dtype, Body&& body) {
  switch (raw_value(dtype)) {
    case MQ_DTYPE_BF16:
      return body(Bf16Reader{static_cast<const uint16_t*>(w)});
    case MQ_DTYPE_F16:
      return body(F16Reader{static_cast<const uint16_t*>(w)});
    case MQ_DTYPE_F32:
      return body(F32Reader{static_cast<const float*>(w)});
  }
  return set_error(MQ_ERR_INVALID,
                   std::string(fn) + ": unknown dtype " + std::to_string(raw_value(dtype)));
}

}  // namespace kernels
}  // namespace moequant
