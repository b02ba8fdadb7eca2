// What an interrupted run does (issue #25, items 3 and 12): the registered leftovers removed by
// the watcher thread, one line, exit 128 + signal; a publishing step not raced; a bus error in a
// mapped file named. Each case runs in a forked child (a death test): the watcher blocks the
// signals of the whole process, which the test runner must not inherit.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "moequant/common/error.h"
#include "moequant/common/interrupt_cleanup.h"
#include "moequant/common/mapped_files.h"

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

// A thread that existed before the watcher was installed does not block the signals (OpenBLAS
// starts its pool when the library is loaded, before main()): a signal it takes is handled all the
// same, not the default action that ends the process with nothing cleaned up.
TEST_F(InterruptCleanup, ASignalTakenByAThreadStartedBeforeInstallingIsHandled) {
  TempDir t;
  const fs::path partial = t.path / "out.moequant-partial";
  fs::create_directories(partial);
  EXPECT_EXIT(
      {
        std::thread early([] {
          for (;;) ::pause();
        });
        install_interrupt_cleanup("moequant");
        RemoveOnInterrupt p(partial.string(), "the partial folder");
        ::pthread_kill(early.native_handle(), SIGTERM);  // to that thread, not the process
        std::this_thread::sleep_for(std::chrono::seconds(30));
        early.join();
      },
      ::testing::ExitedWithCode(128 + SIGTERM),
      "interrupted by SIGTERM; removed the partial folder");
  EXPECT_FALSE(fs::exists(partial));
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

TEST_F(InterruptCleanup, OnceTheOutcomeIsAgreedASignalEndsQuietlyWithIt) {
  // mpirun ends the other ranks with SIGTERM when one rank exits with an agreed error: their
  // teardown must not be reported as an interruption.
  TempDir t;
  const fs::path partial = t.path / "out.moequant-partial";
  fs::create_directories(partial);
  EXPECT_EXIT(
      {
        install_interrupt_cleanup("moequant");
        RemoveOnInterrupt p(partial.string(), "the partial folder");
        const AgreedError agreed("rank 0: 8 experts not divisible by EP 3");
        ::kill(::getpid(), SIGTERM);
        std::this_thread::sleep_for(std::chrono::seconds(30));
      },
      ::testing::ExitedWithCode(1), "^$");  // not a word on stderr
  EXPECT_FALSE(fs::exists(partial));        // still cleaned up
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

TEST_F(InterruptCleanup, ABusErrorInAMappedFileNamesTheFile) {
  TempDir t;
  const std::string shard = (t.path / "model-00001-of-00002.safetensors").string();
  const fs::path partial = t.path / "out.moequant-partial";
  fs::create_directories(partial);
  std::ofstream(shard) << std::string(3 * 4096, 'x');
  EXPECT_EXIT(
      {
        install_interrupt_cleanup("moequant");
        RemoveOnInterrupt p(partial.string(), "the partial folder");
        const int fd = ::open(shard.c_str(), O_RDONLY);
        void* base = ::mmap(nullptr, 3 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        remember_mapping(base, 3 * 4096, shard);
        ::truncate(shard.c_str(), 4096);  // another job rewrites the checkpoint
        volatile const char* bytes = static_cast<const char*>(base);
        (void)bytes[2 * 4096 + 5];  // past the new end: SIGBUS
        std::this_thread::sleep_for(std::chrono::seconds(30));
      },
      ::testing::ExitedWithCode(1),
      "moequant: error: .*model-00001-of-00002.safetensors: byte 8197 of 12288 could not be read "
      "\\(bus error\\): the file shrank or vanished while it was being read.*removed the partial "
      "folder");
  EXPECT_FALSE(fs::exists(partial));
}

TEST(MappedFiles, DescribeAddressesInsideRememberedMappings) {
  static char region[100];
  remember_mapping(region, sizeof(region), "/m/a.safetensors");
  EXPECT_EQ(describe_mapped_address(region + 10), "/m/a.safetensors: byte 10 of 100");
  EXPECT_EQ(describe_mapped_address(region + 100), "");
  forget_mapping(region);
  EXPECT_EQ(describe_mapped_address(region + 10), "");
}

}  // namespace
}  // namespace moequant
