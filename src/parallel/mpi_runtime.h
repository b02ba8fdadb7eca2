// MpiRuntime: keeps MPI initialized while communicators we created need it (private header).
//
// MPI is initialized here only when nobody did it before (the host program or a test main may
// have), and then finalized when the last holder lets go. After a peer failure MPI_Finalize
// could wait forever for the dead peer, so it is skipped: the process is about to end anyway.
#pragma once

#include <memory>

namespace moequant::parallel {

class MpiRuntime {
 public:
  // The shared runtime; initializes MPI (MPI_Init_thread, MPI_THREAD_FUNNELED) if needed.
  // Throws moequant::Error if MPI was already finalized.
  static std::shared_ptr<MpiRuntime> acquire();
  // Records that some MPI operation failed (a peer may be dead): finalize will be skipped.
  static void note_failure();
  // MPI_Comm_rank(MPI_COMM_WORLD) when MPI is initialized and not finalized, else -1.
  static int world_rank_or_unknown();

  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

 private:
  explicit MpiRuntime(bool we_initialized) : we_initialized_(we_initialized) {}
  bool we_initialized_;
};

}  // namespace moequant::parallel
