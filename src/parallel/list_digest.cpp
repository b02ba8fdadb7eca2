#include "list_digest.h"

#include <cstring>
#include <limits>

namespace moequant::parallel {

namespace {

constexpr int kChunkBits = 21;
constexpr uint64_t kChunkMask = (uint64_t{1} << kChunkBits) - 1;

// FNV-1a style, 8 bytes per step (names are long; a byte at a time costs ~1 ms for 18k names).
void mix_bytes(uint64_t& h, const void* bytes, size_t n) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; n > 0; --n, ++p) h = (h ^ *p) * 0x100000001b3ull;
}

// Field f occupies out[6f .. 6f+6): three +chunks, then three -chunks.
void encode_field(uint64_t x, float* out) {
  for (int c = 0; c < 3; ++c) {
    const auto chunk = static_cast<float>((x >> (kChunkBits * c)) & kChunkMask);
    out[c] = chunk;
    out[3 + c] = -chunk;
  }
}

// Returns whether members agree; min and max are rebuilt chunk by chunk.
bool decode_field(const float* in, uint64_t* min_out, uint64_t* max_out) {
  bool agree = true;
  uint64_t lo = 0, hi = 0;
  for (int c = 0; c < 3; ++c) {
    const float max_chunk = in[c], min_chunk = -in[3 + c];
    agree = agree && max_chunk == min_chunk;
    hi |= static_cast<uint64_t>(max_chunk) << (kChunkBits * c);
    lo |= static_cast<uint64_t>(min_chunk) << (kChunkBits * c);
  }
  if (min_out) *min_out = lo;
  if (max_out) *max_out = hi;
  return agree;
}

}  // namespace

void ListDigest::add(const std::string& name, size_t num_values) {
  ++entries;
  values += num_values;
  mix_bytes(hash, name.data(), name.size());
  const uint64_t n = (uint64_t{name.size()} << 40) ^ num_values;  // separates name from size
  mix_bytes(hash, &n, sizeof(n));
}

void encode_digest(const ListDigest& d, float* out) {
  encode_field(d.entries, out);
  encode_field(d.values, out + 6);
  encode_field(d.hash & ((uint64_t{1} << 63) - 1), out + 12);
}

void encode_absent(float* out) {
  for (size_t i = 0; i < kDigestFloats; ++i) out[i] = -std::numeric_limits<float>::infinity();
}

DigestVerdict decode_digest(const float* in) {
  DigestVerdict v;
  v.entries_agree = decode_field(in, &v.min_entries, &v.max_entries);
  v.values_agree = decode_field(in + 6, &v.min_values, &v.max_values);
  v.hash_agree = decode_field(in + 12, nullptr, nullptr);
  return v;
}

}  // namespace moequant::parallel
