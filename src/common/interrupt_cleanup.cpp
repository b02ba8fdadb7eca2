#include "moequant/common/interrupt_cleanup.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "moequant/common/error.h"
#include "moequant/common/mapped_files.h"
#include "moequant/common/strings.h"

namespace moequant {

namespace {

namespace fs = std::filesystem;

struct Registry {
  // Recursive: a step run uninterrupted may release its own registrations.
  std::recursive_mutex mutex;
  std::map<long, std::pair<std::string, std::string>> paths;  // id -> (path, what)
  long next_id = 0;
  std::string activity;
  std::string program = "moequant";
  int quiet_exit_code = -1;  // >= 0: the outcome is known, exit with it without a word
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: the watcher may use it during exit
  return *r;
}

// A bus error (a mapped input file cut while a copy reads it) is reported through this signal:
// the faulting thread cannot go on, and a signal handler may do next to nothing, so it hands the
// fault to the watcher thread and waits there for the process to end.
int fault_signal() {
  return SIGRTMIN + 3;
}
std::atomic<void*> fault_address{nullptr};

void on_bus_error(int, siginfo_t* info, void*) {
  void* expected = nullptr;
  fault_address.compare_exchange_strong(expected, info->si_addr);  // the first fault is named
  ::kill(::getpid(), fault_signal());
  for (;;) ::pause();  // returning would fault again; the watcher ends the process
}

sigset_t watched_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, fault_signal());
  return set;
}

// "rank R: " under a launcher with several ranks, as the other rank-level messages say.
std::string rank_label() {
  for (const auto& [rank, size] :
       {std::pair<const char*, const char*>{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
        {"PMIX_RANK", "PMIX_SIZE"},
        {"RANK", "WORLD_SIZE"}}) {
    const char* r = std::getenv(rank);
    const char* s = std::getenv(size);
    if (r && s && std::atoi(s) > 1) return str_cat("rank ", r, ": ");
  }
  return "";
}

// Removes one registered path; returns what to say about it ("" when there was nothing).
std::string remove_path(const std::string& path, const std::string& what) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(path, ec);
  if (ec || !fs::exists(st)) return "";
  if (fs::is_directory(st)) {
    // Renamed first: a producer thread still running cannot create files in it any more.
    const std::string aside = str_cat(path, ".removing-", ::getpid());
    fs::rename(path, aside, ec);
    const std::string target = ec ? path : aside;
    ec.clear();
    fs::remove_all(target, ec);
  } else {
    fs::remove(path, ec);
  }
  if (ec) return str_cat("could not remove ", what, " '", path, "': ", ec.message());
  return str_cat("removed ", what, " '", path, "'");
}

[[noreturn]] void clean_up_and_exit(int sig) {
  Registry& r = registry();
  // A bus error may strike inside an uninterrupted step: do not wait for it then.
  std::unique_lock<std::recursive_mutex> lock(r.mutex, std::defer_lock);
  if (sig == fault_signal())
    lock.try_lock();
  else
    lock.lock();  // waits for an uninterrupted step
  std::vector<std::string> done;
  // Newest first: a folder registered after its lock is removed before the lock is released.
  for (auto it = r.paths.rbegin(); it != r.paths.rend(); ++it) {
    const std::string said = remove_path(it->second.first, it->second.second);
    if (!said.empty()) done.push_back(said);
  }
  const std::string cleaned = done.empty() ? std::string("nothing to clean up") : join(done, ", ");
  std::string line;
  int code = 128 + sig;
  if (r.quiet_exit_code >= 0 && sig != fault_signal()) {
    std::fflush(stdout);
    std::_Exit(r.quiet_exit_code);
  }
  if (sig == fault_signal()) {
    const void* address = fault_address.load();
    const std::string file = describe_mapped_address(address);
    line = file.empty()
               ? str_cat(r.program, ": ", rank_label(), "bus error at address ", address, "; ",
                         cleaned, "\n")
               : str_cat(r.program, ": ", rank_label(), "error: ", file,
                         " could not be read (bus error): the file shrank or vanished while it was "
                         "being read; the checkpoint must not change during a run; ",
                         cleaned, "\n");
    code = file.empty() ? 128 + SIGBUS : 1;
  } else {
    const char* name = sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGHUP";
    line =
        str_cat(r.program, ": ", rank_label(), "interrupted by ", name,
                r.activity.empty() ? std::string() : " while " + r.activity, "; ", cleaned, "\n");
  }
  std::fflush(stdout);
  const ssize_t ignored = ::write(2, line.data(), line.size());
  (void)ignored;
  std::_Exit(code);  // no atexit handlers, no destructors racing the other threads
}

// The pipe from the signal handler to the watcher thread.
int signal_pipe[2] = {-1, -1};

// Runs on whichever thread the kernel picks among those not blocking the signal: the watcher, or
// a thread a library started before main() (OpenBLAS starts its pool when it is loaded, with no
// signal blocked). Only async-signal-safe work here: the signal number goes to the watcher.
void on_watched_signal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  const ssize_t ignored = ::write(signal_pipe[1], &b, 1);
  (void)ignored;
  errno = saved;
}

}  // namespace

void install_interrupt_cleanup(const std::string& program) {
  registry().program = program;
  if (signal_pipe[0] >= 0) return;  // installed already
  MQ_CHECK(::pipe2(signal_pipe, O_CLOEXEC) == 0,
           "cannot create the signal pipe: ", std::strerror(errno));
  const sigset_t set = watched_signals();
  // A handler, not only a block: a thread that existed before this call does not block the
  // signals, and with the default action a signal it takes would end the process uncleaned.
  struct sigaction sa {};
  sa.sa_handler = on_watched_signal;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, fault_signal()})
    MQ_CHECK(::sigaction(sig, &sa, nullptr) == 0, "cannot handle signal ", sig, ": ",
             std::strerror(errno));
  // Threads started from here on inherit the block, so the kernel hands the signal to the watcher
  // (or to an earlier library thread, whose handler passes it on all the same).
  const int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr);
  MQ_CHECK(rc == 0, "cannot block SIGTERM/SIGINT: ", std::strerror(rc));
  std::thread([set] {
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    for (;;) {
      unsigned char sig = 0;
      if (::read(signal_pipe[0], &sig, 1) == 1) clean_up_and_exit(sig);
      // EINTR: the handler ran on this thread, and its byte is in the pipe now.
    }
  }).detach();
  install_bus_error_report();
}

void install_bus_error_report() {
  struct sigaction sa {};
  sa.sa_sigaction = on_bus_error;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  MQ_CHECK(::sigaction(SIGBUS, &sa, nullptr) == 0, "cannot handle SIGBUS: ", std::strerror(errno));
}

RemoveOnInterrupt::RemoveOnInterrupt(std::string path, std::string what) {
  Registry& r = registry();
  std::lock_guard<std::recursive_mutex> lock(r.mutex);
  id_ = r.next_id++;
  r.paths.emplace(id_, std::make_pair(std::move(path), std::move(what)));
}

RemoveOnInterrupt::~RemoveOnInterrupt() {
  release();
}

void RemoveOnInterrupt::release() {
  Registry& r = registry();
  std::lock_guard<std::recursive_mutex> lock(r.mutex);
  r.paths.erase(id_);
}

void run_uninterrupted(const std::function<void()>& step) {
  std::lock_guard<std::recursive_mutex> lock(registry().mutex);
  step();
}

void end_quietly_on_interrupt(int exit_code) {
  Registry& r = registry();
  std::lock_guard<std::recursive_mutex> lock(r.mutex);
  r.quiet_exit_code = exit_code;
}

void set_interrupted_activity(const std::string& activity) {
  Registry& r = registry();
  std::lock_guard<std::recursive_mutex> lock(r.mutex);
  r.activity = activity;
}

}  // namespace moequant
