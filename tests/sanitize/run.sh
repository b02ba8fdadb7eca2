#!/usr/bin/env bash
# The CPU test suite built with AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer on)
# in a build directory of its own, halting on the first report. Called from launch/setup.sh
# --test (so from CI); runs alone too:
#
#   tests/sanitize/run.sh [extra cmake arguments]
#   env: BUILD_DIR (default <repo>/build-sanitize), JOBS (default 2)
#
# Left out on purpose: embedding_install (an outside project that is not instrumented cannot link
# the instrumented library; the plain suite runs it) and the CUDA code (no GPU in CI; nvcc's
# host compiler would need the flags too). Suppressed leaks: tests/sanitize/lsan.supp.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD_DIR:-$repo/build-sanitize}
jobs=${JOBS:-2}
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)

if [[ ! -f "$build/CMakeCache.txt" ]]; then
  # -O1 -g1: line tables for the reports at a fraction of full debug info's compile time (the
  # LibTorch headers make -g expensive), which keeps this build within CI's budget on 2 cores.
  cmake -S "$repo" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS_RELEASE="-O1 -g1" -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1" \
    -DMOEQUANT_SANITIZE=address,undefined -DMOEQUANT_WITH_CUDA=OFF \
    -DMOEQUANT_BUILD_BENCH=OFF "$@"
fi
cmake --build "$build" -j "$jobs"

# halt_on_error: the first report fails its test (UBSan is built with -fno-sanitize-recover).
asan="halt_on_error=1:abort_on_error=0:detect_odr_violation=0"
export LSAN_OPTIONS="suppressions=$repo/tests/sanitize/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export NCCL_NVLS_ENABLE=0
cd "$build"
# Single-process tests with LeakSanitizer on. Processes under mpirun (label mpi) run without it:
# Open MPI unloads its components at MPI_Finalize, and the memory they keep until exit then shows
# as leaks from "<unknown module>" that no suppression can name. ASan and UBSan stay on there.
ASAN_OPTIONS="$asan:detect_leaks=1" ctest --output-on-failure -j "$jobs" -LE mpi \
  -E '^embedding_install$'
ASAN_OPTIONS="$asan:detect_leaks=0" ctest --output-on-failure -j "$jobs" -L mpi
