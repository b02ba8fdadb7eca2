// What happens when a run is interrupted: SIGTERM (a scheduler's time limit; mpirun passes it to
// every rank), SIGINT (Ctrl-C) or SIGHUP. What the run has half-made (the partial output folder,
// its lock, a temporary model) is removed, one line says what was interrupted, and the process
// exits with 128 + the signal number. A bus error from a mapped input file that shrank is
// reported the same way, naming the file.
//
// The signals are blocked in every thread and taken by one watcher thread with sigwait(), so the
// cleanup runs as ordinary code on that thread, never inside a signal handler. A library used by
// a host program installs nothing: the registrations below are then inert bookkeeping.
#pragma once

#include <functional>
#include <string>

namespace moequant {

// Handles SIGTERM, SIGINT and SIGHUP, blocks them in this thread (threads started later inherit
// the mask) and starts the watcher thread that cleans up and exits. Call first in main(). A thread
// started earlier (a library's pool, e.g. OpenBLAS's) may still take a signal: its handler passes
// the signal to the watcher. `program` starts the message ("moequant"). Once per process.
void install_interrupt_cleanup(const std::string& program);

// Also part of install_interrupt_cleanup: a SIGBUS (a mapped input file cut while it is read;
// mapped_files.h names the file) runs the same cleanup and ends the process with one error line
// and exit code 1. Call it again after a library that installs its own SIGBUS handler started
// (MPI_Init does).
void install_bus_error_report();

// While alive, `path` is removed if the process is interrupted; `what` names it in the message
// ("the partial folder"). A folder is first renamed aside, so that no other thread of the run
// can add to it while it is removed.
class RemoveOnInterrupt {
 public:
  RemoveOnInterrupt(std::string path, std::string what);
  ~RemoveOnInterrupt();
  RemoveOnInterrupt(const RemoveOnInterrupt&) = delete;
  RemoveOnInterrupt& operator=(const RemoveOnInterrupt&) = delete;

  // Forgets the path now (it was published, or removed by the run itself).
  void release();

 private:
  long id_;
};

// Runs `step` with the cleanup held off: a signal that arrives meanwhile is handled when `step`
// returns. For a rename that publishes a folder, which the cleanup must not race.
void run_uninterrupted(const std::function<void()>& step);

// What the process is doing, for the message ("exporting into '/out'").
void set_interrupted_activity(const std::string& activity);

// The run's outcome is known (its error agreed by every rank, or the command returned): a
// signal from now on (a launcher ending the other ranks of a job whose rank exited non-zero)
// still runs the cleanup, but ends the process quietly with `exit_code` instead of reporting an
// interruption that changed nothing.
void end_quietly_on_interrupt(int exit_code);

}  // namespace moequant
