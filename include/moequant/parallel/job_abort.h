// How a rank ends the whole job after an error its peers may not know about.
//
// The tool's policy: errors that every rank agreed on (agree_on_error, the amax consistency
// check) are reported and the process exits non-zero normally. Any other error - a timeout, a
// peer failure, an exception escaping on one rank - goes through abort_job(): print it, then end
// every rank of the job (MPI_Abort under MPI; under torchrun a non-zero exit, on which the agent
// stops the other workers), so that no peer is left waiting for a collective until its deadline.
#pragma once

#include <functional>
#include <string>

namespace moequant::parallel {

// Prints "moequant: rank R: <message>" to stderr (R from MPI or the launcher's environment when
// known), then MPI_Abort(MPI_COMM_WORLD, exit_code) when MPI is running, else _Exit(exit_code).
[[noreturn]] void abort_job(const std::string& message, int exit_code = 1) noexcept;

// Returns body()'s result; an exception escaping body() goes to abort_job(what()).
int run_or_abort_job(const std::function<int()>& body) noexcept;

}  // namespace moequant::parallel
