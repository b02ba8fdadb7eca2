#include "moequant/io/output_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "moequant/common/error.h"
#include "moequant/common/interrupt_cleanup.h"

namespace moequant::io {

namespace {

std::string host_name() {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  return host;
}

// The owner as written into the lock file: "host H\npid P\nstarted T\n".
struct Owner {
  std::string host;
  long pid = 0;
  std::string started;

  bool empty() const { return host.empty() && pid == 0; }
  std::string describe() const {
    return str_cat("host ", host.empty() ? "?" : host, ", pid ", pid, ", started ",
                   started.empty() ? "?" : started);
  }
};

Owner parse_owner(const std::string& text) {
  Owner o;
  std::istringstream in(text);
  std::string key;
  while (in >> key) {
    if (key == "host")
      in >> o.host;
    else if (key == "pid")
      in >> o.pid;
    else if (key == "started")
      std::getline(in >> std::ws, o.started);
  }
  return o;
}

std::string read_fd(int fd) {
  std::string text;
  char buf[512];
  ssize_t n;
  off_t at = 0;
  while ((n = ::pread(fd, buf, sizeof(buf), at)) > 0 && text.size() < 4096) {
    text.append(buf, static_cast<size_t>(n));
    at += n;
  }
  return text;
}

std::string now_string() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

bool flock_unsupported(int err) {
  return err == ENOSYS || err == EOPNOTSUPP || err == ENOLCK || err == EINVAL;
}

// Whether a recorded owner may still run, where flock cannot tell: a live pid on this host, or
// any owner on another host.
bool may_still_run(const Owner& o) {
  if (o.host != host_name()) return true;
  return o.pid > 0 && (::kill(static_cast<pid_t>(o.pid), 0) == 0 || errno == EPERM);
}

}  // namespace

struct OutputLock::State {
  std::string out_dir, path;
  int fd = -1;
  std::string stale_owner;
  std::unique_ptr<RemoveOnInterrupt> on_interrupt;

  ~State() {
    on_interrupt.reset();
    // Unlinked while still locked, so that a rival never locks a file about to vanish.
    ::unlink(path.c_str());
    ::close(fd);
  }
};

namespace {

std::mutex held_mutex;
std::map<std::string, std::weak_ptr<OutputLock::State>>& held() {
  static auto* m = new std::map<std::string, std::weak_ptr<OutputLock::State>>;
  return *m;
}

[[noreturn]] void throw_held(const std::string& out_dir, const std::string& path, int fd) {
  // The owner writes its record right after locking: give it a moment to appear.
  Owner o = parse_owner(read_fd(fd));
  for (int i = 0; i < 200 && o.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    o = parse_owner(read_fd(fd));
  }
  ::close(fd);
  MQ_THROW("output '", out_dir, "' is being written by another moequant run (",
           o.empty() ? std::string("owner unknown") : o.describe(), "; lock file ", path,
           "): wait for it to finish, or choose another --out");
}

}  // namespace

std::string lock_path_for(const std::string& out_dir) {
  std::string base = out_dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  return base + ".moequant-lock";
}

std::string OutputLock::this_owner() {
  return str_cat("host ", host_name(), ", pid ", ::getpid());
}

OutputLock OutputLock::acquire(const std::string& out_dir) {
  const std::string path = lock_path_for(out_dir);
  std::lock_guard<std::mutex> guard(held_mutex);
  if (auto existing = held()[path].lock()) return OutputLock(existing);

  for (int attempt = 0;; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    MQ_CHECK(fd >= 0, "cannot create the output lock '", path, "': ", std::strerror(errno));
    bool locked = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    const int err = errno;
    if (!locked && (err == EWOULDBLOCK || err == EAGAIN)) throw_held(out_dir, path, fd);
    if (!locked && !flock_unsupported(err)) {
      ::close(fd);
      MQ_THROW("cannot lock the output lock '", path, "': ", std::strerror(err));
    }
    // The owner may have released (unlinked) the file between our open and our flock: then
    // this descriptor names a file nobody else will look at. Start again on the path.
    struct stat by_fd {
    }, by_path{};
    if (::fstat(fd, &by_fd) != 0 || ::stat(path.c_str(), &by_path) != 0 ||
        by_fd.st_ino != by_path.st_ino || by_fd.st_dev != by_path.st_dev) {
      ::close(fd);
      MQ_CHECK(attempt < 100, "cannot take the output lock '", path, "': it keeps being replaced");
      continue;
    }
    const Owner previous = parse_owner(read_fd(fd));
    if (!locked && !previous.empty() && may_still_run(previous)) {
      ::close(fd);
      MQ_THROW("output '", out_dir, "' has a lock file naming another moequant run (",
               previous.describe(), "; lock file ", path,
               "), and this filesystem cannot tell whether it still runs (no flock): remove the "
               "lock file if that run is gone");
    }
    auto state = std::make_shared<State>();
    state->out_dir = out_dir;
    state->path = path;
    state->fd = fd;
    if (!previous.empty()) state->stale_owner = previous.describe();
    const std::string record =
        str_cat("host ", host_name(), "\npid ", ::getpid(), "\nstarted ", now_string(), "\n");
    const bool written = ::ftruncate(fd, 0) == 0 && ::pwrite(fd, record.data(), record.size(), 0) ==
                                                        static_cast<ssize_t>(record.size());
    MQ_CHECK(written, "cannot write the output lock '", path, "': ", std::strerror(errno));
    state->on_interrupt = std::make_unique<RemoveOnInterrupt>(path, "the output lock");
    held()[path] = state;
    return OutputLock(state);
  }
}

const std::string& OutputLock::stale_owner() const {
  return state_->stale_owner;
}

}  // namespace moequant::io
