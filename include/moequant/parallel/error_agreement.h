// Agreeing on a failure before moving on (docs/design.md: "a failure on one rank is agreed by the
// whole group before anyone moves on").
//
// A rank that fails alone and simply throws leaves its peers waiting in the next collective.
// Instead every rank calls agree_on_error() at the step boundary with its local error (or ""):
// one all-reduce in the common case, plus one all-gather of the messages when some rank failed.
#pragma once

#include <functional>
#include <string>

#include "moequant/parallel/communicator.h"

namespace moequant::parallel {

// Collective over `comm`. When every rank passes "" it returns normally. Otherwise every rank
// throws the same moequant::AgreedError "rank R: <message>", where R is the world rank of the
// lowest failing group rank and <message> its local_error (with ", and N more ranks failed" when
// several did).
void agree_on_error(Communicator& comm, const std::string& local_error);

// Runs `step` on this rank and agrees on its outcome: an exception (std::exception) on any rank
// becomes the same AgreedError on every rank of `comm`, with that rank's message. Collective.
void agreed_step(Communicator& comm, const std::function<void()>& step);

// The message of what `step` throws ("" when it returns): for steps whose error is agreed later,
// together with other outcomes.
std::string error_of(const std::function<void()>& step);

}  // namespace moequant::parallel
