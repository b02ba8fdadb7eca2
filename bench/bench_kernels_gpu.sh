#!/usr/bin/env bash
# Batched quantize kernels on a GPU machine, in one command (from the repository root):
#
#   bash bench/bench_kernels_gpu.sh          ($OUT, default ./out, collects the logs)
#
# 1. configure the whole project (build-gpu, sm_90a); if that fails, a kernels-only copy of the
#    tree (kernel layer, its unit and gpu tests, the bench) is configured instead
# 2. build moequant_kernels, test_formats, test_kernels_gpu, bench_kernels_gpu (-j16 or -j$JOBS)
# 3. test_formats (CPU: the batched entry point against the per-matrix calls, and the rest)
# 4. test_kernels_gpu (every CUDA kernel, per-matrix and batched, bit-exact against the CPU; the
#    nvfp4 threshold tables and packed instructions against numerics.h on every input)
# 5. bench_kernels_gpu (one launch per matrix vs one batched launch vs a copy of the same bytes)
# The last lines printed are the pass/fail summary and the bench's summary table; the exit code
# is non-zero when a build, test or check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
BUILD=$ROOT/build-gpu
failures=()
step() { printf '\n===== %s =====\n' "$*"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv || true
nvcc --version | tail -n 2

kernels_only_tree() {
  local dst=$1
  rm -rf "$dst"
  mkdir -p "$dst/src" "$dst/tests/unit" "$dst/bench"
  cp CMakeLists.txt "$dst/"
  cp -r include "$dst/"
  cp -r src/kernels "$dst/src/"
  cp -r tests/gpu "$dst/tests/"
  cp -r tests/unit/kernels "$dst/tests/unit/"
  cp bench/bench_kernels.cmake bench/bench_kernels.cpp bench/bench_kernels_gpu.cu \
     bench/bench_kernels_gpu.h "$dst/bench/"
  python3 - "$dst" <<'PY'
import re, sys
dst = sys.argv[1]
top = open(f"{dst}/CMakeLists.txt").read()
top = re.sub(r"find_package\((Torch|MPI|nlohmann_json)[^)]*\)\n", "", top)
top = top.replace("add_subdirectory(examples)", "").replace("include(cmake/install.cmake)", "")
open(f"{dst}/CMakeLists.txt", "w").write(top)
open(f"{dst}/src/CMakeLists.txt", "w").write("add_subdirectory(kernels)\n")
tests = open("tests/CMakeLists.txt").read()
fn = tests[tests.index("function(mq_add_gtest"):]
fn = fn[: fn.index("endfunction()") + len("endfunction()")]
open(f"{dst}/tests/CMakeLists.txt", "w").write(
    "find_package(GTest REQUIRED)\nset(MOEQUANT_MPIEXEC mpiexec)\n"
    "set(MOEQUANT_TEST_DATA ${CMAKE_CURRENT_SOURCE_DIR}/data)\n" + fn +
    "\nadd_subdirectory(unit/kernels)\nadd_subdirectory(gpu)\n")
open(f"{dst}/bench/CMakeLists.txt", "w").write(
    "include(${CMAKE_CURRENT_SOURCE_DIR}/bench_kernels.cmake)\n")
PY
}

step "configure"
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a
            -DMOEQUANT_BUILD_EXAMPLES=OFF)
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
if ! cmake -S "$ROOT" -B "$BUILD" "${cmake_args[@]}" \
    -DCMAKE_PREFIX_PATH="${TORCH_PREFIX};$ROOT/.deps" > "$OUT/build.log" 2>&1; then
  echo "!! the whole project did not configure; using a kernels-only copy of the tree"
  SRC=/tmp/moequant-kernels-only
  BUILD=$SRC/build-gpu
  kernels_only_tree "$SRC"
  cmake -S "$SRC" -B "$BUILD" "${cmake_args[@]}" >> "$OUT/build.log" 2>&1 \
    || { tail -n 30 "$OUT/build.log"; echo "!! kernels-only configure failed too"; exit 1; }
fi

step "build"
targets=(moequant_kernels test_formats test_kernels_gpu bench_kernels_gpu)
if cmake --build "$BUILD" --target "${targets[@]}" -j"${JOBS:-16}" >> "$OUT/build.log" 2>&1; then
  echo "build OK"
else
  tail -n 40 "$OUT/build.log"
  exit 1
fi
grep -iE "warning" "$OUT/build.log" | head -n 20 || true

step "test_formats (CPU)"
"$BUILD/tests/unit/kernels/test_formats" > "$OUT/test_formats.log" 2>&1 || failures+=("test_formats")
tail -n 3 "$OUT/test_formats.log"

step "test_kernels_gpu"
"$BUILD/tests/gpu/test_kernels_gpu" 2>&1 | tee "$OUT/test_kernels_gpu.log" | grep -E "^\[  (FAILED|PASSED|SKIPPED) |nvfp4 table" \
  || true
grep -q "^\[  PASSED  \]" "$OUT/test_kernels_gpu.log" && ! grep -q "^\[  FAILED  \]" "$OUT/test_kernels_gpu.log" \
  || failures+=("test_kernels_gpu")

step "bench_kernels_gpu"
"$BUILD/bench/bench_kernels_gpu" 2>&1 | tee "$OUT/bench_kernels_gpu.txt" || failures+=("bench checks")

step "summary"
grep -E "^\[  (PASSED|FAILED)  \]" "$OUT/test_formats.log" "$OUT/test_kernels_gpu.log" || true
sed -n '/^# summary/,$p' "$OUT/bench_kernels_gpu.txt"
if [ ${#failures[@]} -eq 0 ]; then
  echo "bench_kernels_gpu.sh: PASS (all builds, tests and checks)"
else
  echo "bench_kernels_gpu.sh: FAIL: ${failures[*]}"
  exit 1
fi
