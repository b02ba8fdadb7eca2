// How much memory this machine has: what flags that size allocations are checked against before
// anything is allocated (a request for terabytes is one clear error, not std::bad_alloc).
#pragma once

#include <cstdint>

namespace moequant {

// Bytes of physical memory of this machine (0 when the system does not say).
uint64_t physical_memory_bytes();

}  // namespace moequant
