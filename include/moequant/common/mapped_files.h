// Which file a memory address belongs to, for the one fault a reader of mapped files cannot check
// away: a file cut while a copy reads its pages raises SIGBUS in the middle of that copy. The
// readers register their mappings here; the interruption watcher (interrupt_cleanup.h) names the
// file in its error line instead of the process dying with "Bus error" and no word.
#pragma once

#include <cstddef>
#include <string>

namespace moequant {

// Records that [base, base + size) maps `path`; forget_mapping(base) when it is unmapped.
void remember_mapping(const void* base, size_t size, const std::string& path);
void forget_mapping(const void* base);

// "<path>: byte N of M" for an address inside a remembered mapping, else "".
std::string describe_mapped_address(const void* address);

}  // namespace moequant
