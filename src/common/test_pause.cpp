#include "moequant/common/test_pause.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "moequant/common/regular_file.h"

namespace moequant {

void pause_for_test(const char* point) {
  const char* env = std::getenv("MOEQUANT_TEST_PAUSE");
  if (env == nullptr) return;
  const std::string spec = env;
  const size_t colon = spec.find(':');
  if (colon == std::string::npos || spec.compare(0, colon, point) != 0) return;
  const std::string dir = spec.substr(colon + 1);
  const std::string reached = dir + "/" + point + "." + std::to_string(::getpid());
  if (FILE* f = std::fopen(reached.c_str(), "w")) std::fclose(f);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!path_exists(dir + "/release") && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

}  // namespace moequant
