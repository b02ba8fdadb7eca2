// What an interrupted run does (issue #25, item 3): the registered leftovers removed by the
// watcher thread, one line, exit 128 + signal; a publishing step not raced. Each case runs in a
// forked child (a death test): the watcher blocks the signals of the whole process, which the test
// runner must not inherit.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "moequant/common/interrupt_cleanup.h"

namespace fs = std::filesystem;

namespace moequant {
namespace {

struct TempDir {
  TempDir() : path(fs::temp_directory_path() / ("mq-interrupt-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path path;
};

class InterruptCleanup : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "fast"); }
};

TEST_F(InterruptCleanup, SigtermRemovesWhatIsRegisteredAndExits143) {
  TempDir t;
  const fs::path partial = t.path / "out.moequant-partial";
  const fs::path lock = t.path / "out.moequant-lock";
  fs::create_directories(partial / "sub");
  std::ofstream(partial / "model.safetensors") << "half written";
  std::ofstream(lock) << "host h\npid 1\n";
  const fs::path released = t.path / "released";
  fs::create_directories(released);
  EXPECT_EXIT(
      {
        install_interrupt_cleanup("moequant");
        set_interrupted_activity("exporting into 'out'");
        RemoveOnInterrupt l(lock.string(), "the output lock");
        RemoveOnInterrupt p(partial.string(), "the partial folder");
        RemoveOnInterrupt r(released.string(), "a folder already published");
        r.release();
        ::kill(::getpid(), SIGTERM);
        std::this_thread::sleep_for(std::chrono::seconds(30));
      },
      ::testing::ExitedWithCode(128 + SIGTERM),
      "moequant: interrupted by SIGTERM while exporting into 'out'; removed the partial folder "
      "'.*out.moequant-partial', removed the output lock '.*out.moequant-lock'");
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_FALSE(fs::exists(lock));
  EXPECT_TRUE(fs::exists(released));  // released: not the watcher's any more
}

TEST_F(InterruptCleanup, SigintExits130AndSaysWhenNothingWasLeft) {
  EXPECT_EXIT(
      {
        install_interrupt_cleanup("moequant");
        ::kill(::getpid(), SIGINT);
        std::this_thread::sleep_for(std::chrono::seconds(30));
      },
      ::testing::ExitedWithCode(128 + SIGINT), "interrupted by SIGINT; nothing to clean up");
}

TEST_F(InterruptCleanup, AnUninterruptedStepFinishesFirst) {
  TempDir t;
  const fs::path done = t.path / "renamed";
  EXPECT_EXIT(
      {
        install_interrupt_cleanup("moequant");
        run_uninterrupted([&] {
          ::kill(::getpid(), SIGTERM);
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
          std::ofstream(done) << "published";  // the signal waited for this
        });
        std::this_thread::sleep_for(std::chrono::seconds(30));
      },
      ::testing::ExitedWithCode(128 + SIGTERM), "interrupted by SIGTERM");
  EXPECT_TRUE(fs::exists(done));
}

}  // namespace
}  // namespace moequant
