// A deterministic pause for the end-to-end tests, so that they act at a known moment of a run
// (start a rival run while the output is locked, send a signal mid-export, shrink a source file
// between its opening and its reading) instead of sleeping and hoping.
//
// With MOEQUANT_TEST_PAUSE=<point>:<dir> in the environment, a process that reaches `point`
// creates <dir>/<point>.<pid> and waits until <dir>/release exists (at most 120 s). Without the
// variable, or at another point, it returns at once.
#pragma once

namespace moequant {

void pause_for_test(const char* point);

}  // namespace moequant
