#include "moequant/common/mapped_files.h"

#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "moequant/common/error.h"

namespace moequant {

namespace {

struct Mappings {
  std::mutex mutex;
  std::map<uintptr_t, std::pair<size_t, std::string>> by_base;  // base -> (size, path)
};

Mappings& mappings() {
  static auto* m = new Mappings;  // never destroyed: read by the watcher thread during exit
  return *m;
}

}  // namespace

void remember_mapping(const void* base, size_t size, const std::string& path) {
  Mappings& m = mappings();
  std::lock_guard<std::mutex> lock(m.mutex);
  m.by_base[reinterpret_cast<uintptr_t>(base)] = {size, path};
}

void forget_mapping(const void* base) {
  Mappings& m = mappings();
  std::lock_guard<std::mutex> lock(m.mutex);
  m.by_base.erase(reinterpret_cast<uintptr_t>(base));
}

std::string describe_mapped_address(const void* address) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(address);
  Mappings& m = mappings();
  std::lock_guard<std::mutex> lock(m.mutex);
  auto it = m.by_base.upper_bound(a);
  if (it == m.by_base.begin()) return "";
  --it;
  if (a - it->first >= it->second.first) return "";
  return str_cat(it->second.second, ": byte ", a - it->first, " of ", it->second.first);
}

}  // namespace moequant
