// One run at a time owns an output folder. Two runs writing one --out would delete each other's
// partial folder and publish each other's files; the lock makes the second fail at once instead.
//
// The lock is an exclusive flock() on "<out>.moequant-lock", a file beside the partial folder
// that names its owner (host, pid, start time). It is taken before anything of the output is
// deleted and held until the run ends, then removed. The kernel drops a flock when its process
// dies, so a lock file left by a killed run holds no lock: the next run reports that owner and
// takes the lock over. Where the filesystem has no flock, a lock file whose owner may still run
// (another host, or a live pid here) is refused, never silently stolen.
#pragma once

#include <memory>
#include <string>

namespace moequant::io {

// "<out>.moequant-lock".
std::string lock_path_for(const std::string& out_dir);

class OutputLock {
 public:
  // Takes the lock of `out_dir` (its parent folder must exist). Re-entrant within a process:
  // while a handle is alive, acquiring again returns another handle to the same lock. Throws
  // naming the owner when another run holds it: "output '<out>' is being written by another
  // moequant run (host H, pid P, started T; lock file L)".
  static OutputLock acquire(const std::string& out_dir);

  // The owner recorded in a lock file that no run held any more ("host H, pid P, started T"): a
  // run that was killed. Empty when the lock was free.
  const std::string& stale_owner() const;

  // "host H, pid P": this process, as a rival run names it.
  static std::string this_owner();

  struct State;

 private:
  explicit OutputLock(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace moequant::io
