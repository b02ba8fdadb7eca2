// libFuzzer target: safetensors header parsing on arbitrary bytes.
//
// The input is used twice: as a bare JSON header (parse_header) and as a whole file image
// (parse_file, the path SafetensorsFile::open takes after mmap). Rejection must be a
// moequant::Error; any other exception, crash, sanitizer report or broken invariant on an
// accepted input is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "moequant/common/error.h"
#include "moequant/io/safetensors.h"

namespace {

using moequant::io::Header;

// What a successful parse promises: tensors in data order, tiling [0, data_size) exactly, each
// holding exactly its dtype's bytes.
void check_invariants(const Header& header, uint64_t data_size) {
  uint64_t covered = 0;
  for (const auto& t : header.tensors) {
    if (t.begin != covered || t.end < t.begin || t.end > data_size) std::abort();
    if (t.end - t.begin != t.nbytes()) std::abort();
    covered = t.end;
  }
  if (covered != data_size) std::abort();
}

// Reads every byte of every tensor so that ASan sees any out-of-bounds range.
uint8_t touch_all(const uint8_t* data_section, const Header& header) {
  uint8_t sum = 0;
  for (const auto& t : header.tensors)
    for (uint64_t i = t.begin; i < t.end; ++i) sum = static_cast<uint8_t>(sum + data_section[i]);
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    // Bare header; a data section as long as the input keeps offsets meaningful.
    const Header header = moequant::io::parse_header(data, size, "fuzz.json", size);
    check_invariants(header, size);
  } catch (const moequant::Error&) {
  }
  try {
    const auto layout = moequant::io::parse_file(data, size, "fuzz.safetensors");
    check_invariants(layout.header, size - layout.data_start);
    volatile uint8_t sink = touch_all(data + layout.data_start, layout.header);
    (void)sink;
  } catch (const moequant::Error&) {
  }
  return 0;
}
