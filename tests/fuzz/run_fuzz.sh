#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan in a build dir of their own and runs each one
# briefly from the seed corpus. Called from CI.
#
#   tests/fuzz/run_fuzz.sh [SECONDS]      (default 20)
#   env: BUILD_DIR (default <repo>/build-fuzz), JOBS (default 2)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD_DIR:-$repo/build-fuzz}
seconds=${1:-20}
target=fuzz_safetensors_header

cmake -S "$repo" -B "$build" \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DMOEQUANT_BUILD_FUZZ=ON -DMOEQUANT_WITH_CUDA=OFF -DMOEQUANT_WITH_TORCH=OFF \
  -DMOEQUANT_BUILD_EXAMPLES=OFF -DMOEQUANT_BUILD_BENCH=OFF
cmake --build "$build" --target "$target" -j "${JOBS:-2}"

# Scratch corpus in the build dir: the checked-in seeds are read, never written.
scratch="$build/tests/fuzz/$target.work"
mkdir -p "$scratch/corpus" "$scratch/artifacts"
"$build/tests/fuzz/$target" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -dict="$repo/tests/fuzz/safetensors.dict" \
  -artifact_prefix="$scratch/artifacts/" \
  "$scratch/corpus" "$repo/tests/fuzz/corpus"
