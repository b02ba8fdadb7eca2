#include "moequant/export/output_folder.h"

#include <fcntl.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

#include "moequant/common/error.h"
#include "moequant/common/interrupt_cleanup.h"
#include "moequant/io/output_lock.h"

namespace fs = std::filesystem;

namespace moequant {

namespace {

// What rank 0 holds on an output between prepare and publish/discard: its lock, and the partial
// folder's removal on interruption.
struct OutputHold {
  io::OutputLock lock;
  std::unique_ptr<RemoveOnInterrupt> partial;
};
std::mutex holds_mutex;
std::map<std::string, std::unique_ptr<OutputHold>>& holds() {
  static auto* m = new std::map<std::string, std::unique_ptr<OutputHold>>;
  return *m;
}
void release_hold(const std::string& out_dir) {
  std::unique_ptr<OutputHold> hold;  // destroyed outside the mutex
  std::lock_guard<std::mutex> lock(holds_mutex);
  auto it = holds().find(out_dir);
  if (it == holds().end()) return;
  hold = std::move(it->second);
  holds().erase(it);
}

struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId& o) const { return dev == o.dev && ino == o.ino; }
};
bool file_id(const fs::path& p, FileId* id) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return false;
  *id = {st.st_dev, st.st_ino};
  return true;
}

// True when `inner` is `outer` or lies below it: by real path, and by device and inode of each
// existing folder on the way up from `inner` (a bind mount spells one folder two ways).
fs::path real_path(const fs::path& p) {
  std::error_code ec;
  fs::path a = fs::absolute(p, ec);
  if (ec) a = p;
  fs::path r = fs::weakly_canonical(a, ec);  // symlinks of the existing part, ".." and "."
  if (ec || r.empty()) r = a.lexically_normal();
  while (!r.has_filename() && r.has_relative_path()) r = r.parent_path();  // a trailing '/'
  return r;
}

bool is_same_or_inside(const fs::path& inner, const fs::path& outer) {
  const fs::path in = real_path(inner), out = real_path(outer);
  const auto m = std::mismatch(out.begin(), out.end(), in.begin(), in.end());
  if (m.first == out.end()) return true;
  FileId target;
  if (!file_id(out, &target)) return false;
  for (fs::path p = in; !p.empty(); p = p.parent_path()) {
    FileId id;
    if (file_id(p, &id) && id == target) return true;
    if (p == p.root_path()) break;
  }
  return false;
}

}  // namespace

void check_output_apart_from_source(const std::string& out_dir, const std::string& model_dir) {
  for (const std::string& out : {out_dir, partial_dir_for(out_dir)}) {
    const char* what = out == out_dir ? "--out" : "the partial output folder";
    MQ_CHECK(!is_same_or_inside(model_dir, out), what, " '", out, "' is the model folder '",
             model_dir, "' or a folder above it: writing the output would delete the source");
    MQ_CHECK(!is_same_or_inside(out, model_dir), what, " '", out,
             "' lies inside the model folder '", model_dir,
             "': write the output beside the source, not into it");
  }
}

std::string partial_dir_for(const std::string& out_dir) {
  std::string base = out_dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  return base + ".moequant-partial";
}

void check_output_dir(const std::string& out_dir, bool overwrite) {
  MQ_CHECK(!out_dir.empty(), "no output folder given");
  std::error_code ec;
  if (fs::exists(out_dir, ec)) {
    MQ_CHECK(overwrite, "output folder '", out_dir,
             "' already exists (pass --overwrite to replace it)");
    MQ_CHECK(fs::is_directory(out_dir, ec), "output path '", out_dir,
             "' exists and is not a folder");
  }
  fs::path parent = fs::absolute(out_dir, ec).parent_path();
  MQ_CHECK(fs::exists(parent, ec), "cannot create output folder '", out_dir, "': parent folder '",
           parent.string(), "' does not exist");
  MQ_CHECK(fs::is_directory(parent, ec), "cannot create output folder '", out_dir, "': '",
           parent.string(), "' is not a folder");
  MQ_CHECK(::access(parent.c_str(), W_OK) == 0, "cannot create output folder '", out_dir,
           "': parent folder '", parent.string(), "' is not writable");
}

std::string prepare_partial_dir(const std::string& out_dir, bool overwrite) {
  check_output_dir(out_dir, overwrite);
  // Locked before anything is deleted: a rival run fails here, naming this one.
  auto hold = std::make_unique<OutputHold>(OutputHold{io::OutputLock::acquire(out_dir), nullptr});
  std::error_code ec;
  const std::string partial = partial_dir_for(out_dir);
  const std::string& earlier = hold->lock.stale_owner();
  std::string note;
  if (fs::exists(fs::symlink_status(partial, ec))) {
    note = str_cat("removed the stale partial folder '", partial,
                   "' of an earlier run that did not finish (",
                   earlier.empty() ? std::string("owner unknown") : earlier, ")");
  } else if (!earlier.empty()) {
    note = str_cat("an earlier run into '", out_dir, "' did not finish (", earlier,
                   "): took over its lock");
  }
  fs::remove_all(partial, ec);
  MQ_CHECK(!ec, "cannot remove stale '", partial, "': ", ec.message());
  hold->partial = std::make_unique<RemoveOnInterrupt>(partial, "the partial folder");
  fs::create_directories(partial, ec);
  MQ_CHECK(!ec, "cannot create '", partial, "': ", ec.message());
  set_interrupted_activity(str_cat("exporting into '", out_dir, "'"));
  std::lock_guard<std::mutex> lock(holds_mutex);
  holds()[out_dir] = std::move(hold);
  return note;
}

void publish_partial_dir(const std::string& out_dir, bool overwrite) {
  const std::string partial = partial_dir_for(out_dir);
  // An interruption now waits for the renames: it finds the folder published, or still partial.
  run_uninterrupted([&] {
    std::error_code ec;
    std::string old;
    if (fs::exists(out_dir, ec)) {
      MQ_CHECK(overwrite, "output folder '", out_dir, "' appeared while exporting");
      old = partial_dir_for(out_dir) + "-old";
      fs::remove_all(old, ec);
      fs::rename(out_dir, old, ec);
      MQ_CHECK(!ec, "cannot move the old '", out_dir, "' aside: ", ec.message());
    }
    fs::rename(partial, out_dir, ec);
    MQ_CHECK(!ec, "cannot rename '", partial, "' to '", out_dir, "': ", ec.message());
    release_hold(out_dir);
    if (!old.empty()) fs::remove_all(old, ec);
  });
}

void discard_partial_dir(const std::string& out_dir) noexcept {
  std::error_code ec;
  fs::remove_all(partial_dir_for(out_dir), ec);
  try {
    release_hold(out_dir);
  } catch (...) {
  }
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  MQ_CHECK(fd >= 0, "cannot write '", path, "': ", std::strerror(errno));
  // Whatever fails, the .tmp goes and `path` stays as it was (a full disk leaves nothing).
  auto fail = [&](const char* step, int err) {
    ::unlink(tmp.c_str());
    MQ_THROW("cannot ", step, " '", path, "': ", std::strerror(err));
  };
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      fail("write", err);
    }
    done += static_cast<size_t>(n);
  }
  const int sync_err = ::fsync(fd) == 0 ? 0 : errno;
  const int close_err = ::close(fd) == 0 ? 0 : errno;
  if (sync_err != 0) fail("sync", sync_err);
  if (close_err != 0) fail("write", close_err);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename into place", errno);
}

}  // namespace moequant
