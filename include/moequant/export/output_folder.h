// The output folder is assembled under a temporary name beside the final one and renamed
// into place only when complete, so a failed or killed export leaves nothing that looks
// finished at the final path.
#pragma once

#include <string>

namespace moequant {

// "<out>.moequant-partial": the same on every rank.
std::string partial_dir_for(const std::string& out_dir);

// Checks that out_dir can be produced: its parent exists, is a folder and is writable; out_dir
// is absent, or `overwrite`. Errors name the path. (Cheap: the tool runs it before loading.)
void check_output_dir(const std::string& out_dir, bool overwrite);

// Refuses an output that would delete or overwrite the source: out_dir (or its partial folder)
// equal to model_dir, a parent of it, or inside it. Paths are compared as real paths (symlinks
// and ".." resolved) and by device and inode, so no spelling slips past. Errors name both.
void check_output_apart_from_source(const std::string& out_dir, const std::string& model_dir);

// Rank 0, before any rank writes: checks that out_dir can be produced (its parent exists and is
// writable; out_dir absent, or `overwrite`), takes the output lock (io/output_lock.h; the
// caller's, when it holds it already) and keeps it until publish or discard, removes a stale
// partial folder, creates a fresh one, which an interruption removes (common/interrupt_cleanup.h).
// Returns a note when an earlier run's leftovers were found (its partial folder removed, its
// lock taken over), naming that run's host and pid; else "". Errors name the path.
std::string prepare_partial_dir(const std::string& out_dir, bool overwrite);

// Rank 0, after everything is written: moves the partial folder to out_dir (replacing an old
// out_dir when `overwrite`), not interruptible midway; releases the lock.
void publish_partial_dir(const std::string& out_dir, bool overwrite);

// Best-effort removal of the partial folder after a failure; releases the lock.
void discard_partial_dir(const std::string& out_dir) noexcept;

// Writes a small text file atomically (write to .tmp, fsync, rename). Errors name the path; on
// failure the .tmp file is removed and `path` is left as it was.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace moequant
