// The output lock (issue #25, items 1 and 20): one run at a time owns an output folder; a
// rival fails at once naming the owner; a lock left by a killed run is reported and taken over.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "io_test_util.h"
#include "moequant/io/output_lock.h"

namespace fs = std::filesystem;

namespace moequant::io {
namespace {

using testing::error_of;
using testing::TempDir;

std::string host() {
  char h[256] = {0};
  ::gethostname(h, sizeof(h) - 1);
  return h;
}

TEST(OutputLock, IsReentrantInAProcessAndRemovedWithItsLastHandle) {
  TempDir t;
  const std::string out = t.file("out");
  {
    OutputLock a = OutputLock::acquire(out);
    OutputLock b = OutputLock::acquire(out);  // the pipeline's lock, taken again by the exporter
    EXPECT_TRUE(a.stale_owner().empty());
    EXPECT_TRUE(fs::exists(lock_path_for(out)));
  }
  EXPECT_FALSE(fs::exists(lock_path_for(out)));
  EXPECT_EQ(lock_path_for("/x/out/"), "/x/out.moequant-lock");
}

TEST(OutputLock, ASecondProcessFailsAtOnceNamingTheOwner) {
  TempDir t;
  const std::string out = t.file("out");
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    OutputLock held = OutputLock::acquire(out);
    char c = 1;
    (void)!::write(ready[1], &c, 1);
    (void)!::read(go[0], &c, 1);
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_EQ(error_of([&] { OutputLock::acquire(out); })
                .find("output '" + out + "' is being written by another moequant run (host " +
                      host() + ", pid " + std::to_string(child) + ", started "),
            0u);
  (void)!::write(go[1], &c, 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_NO_THROW(OutputLock::acquire(out));  // released with its owner
}

TEST(OutputLock, ALockLeftByAKilledRunIsReportedAndTakenOver) {
  TempDir t;
  const std::string out = t.file("out");
  const pid_t child = ::fork();
  if (child == 0) {
    OutputLock held = OutputLock::acquire(out);
    ::_exit(0);  // no destructors: the file stays, as after SIGKILL; the kernel drops the flock
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(fs::exists(lock_path_for(out)));
  OutputLock lock = OutputLock::acquire(out);
  EXPECT_EQ(lock.stale_owner().find("host " + host() + ", pid " + std::to_string(child)), 0u);
}

}  // namespace
}  // namespace moequant::io
