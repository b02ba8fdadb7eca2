// Agreeing on a failure before moving on (DESIGN.md: "a failure on one rank is agreed by the
// whole group before anyone moves on").
//
// A rank that fails alone and simply throws leaves its peers waiting in the next collective.
// Instead every rank calls agree_on_error() at the step boundary with its local error (or ""):
// one all-reduce in the common case, plus one all-gather of the messages when some rank failed.
#pragma once

#include <string>

#include "moequant/dist/communicator.h"

namespace moequant::dist {

// Collective over `comm`. When every rank passes "" it returns normally. Otherwise every rank
// throws the same moequant::AgreedError "rank R: <message>", where R is the world rank of the
// lowest failing group rank and <message> its local_error (with ", and N more ranks failed" when
// several did).
void agree_on_error(Communicator& comm, const std::string& local_error);

}  // namespace moequant::dist
