// ListDigest: a few floats that let one all_reduce_max tell whether every member of a group
// holds the same list of quantizers (private to amax_sync).
//
// Each field (number of entries, number of values, 63-bit hash of the names and sizes) is split
// into 3 chunks of 21 bits, exact in a float, and stored twice: +chunk and -chunk. After MAX over
// the members, max(+c) == -max(-c) for every chunk exactly when all members agree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace moequant::parallel {

struct ListDigest {
  uint64_t entries = 0;
  uint64_t values = 0;
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis

  // Adds one entry; call in name order.
  void add(const std::string& name, size_t num_values);
};

// Floats one encoded digest takes.
constexpr size_t kDigestFloats = 18;

// Writes the digest into out[0 .. kDigestFloats).
void encode_digest(const ListDigest& d, float* out);
// Writes the identity of MAX (-inf) into out[0 .. kDigestFloats): the slot of a group this rank
// is not a member of.
void encode_absent(float* out);

struct DigestVerdict {
  bool entries_agree = true;
  bool values_agree = true;
  bool hash_agree = true;
  uint64_t min_entries = 0, max_entries = 0;  // exact while counts stay below 2^21
  uint64_t min_values = 0, max_values = 0;
  bool agree() const { return entries_agree && values_agree && hash_agree; }
};

// Reads a slot after MAX over its group's members.
DigestVerdict decode_digest(const float* reduced);

}  // namespace moequant::parallel
