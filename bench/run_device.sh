#!/usr/bin/env bash
# Build, check and time the CUDA kernels in ONE device call:
#
#   bash bench/run_device.sh            (from the repository root; $OUT collects the logs)
#   FAST=1 bash bench/run_device.sh     (skips the PyTorch baseline and the CPU bench part)
#
# 1. configure the whole project (build-gpu, sm_90a, LibTorch from python3's torch); if that
#    fails, a kernels-only copy of the tree (kernels, gpu tests, bench) is configured instead
# 2. build test_kernels_gpu and bench_kernels (-j16, or -j$JOBS)
# 3. SASS of the kernel objects: 16-byte loads, no local memory, registers (bench/sass_report.py);
#    the bf16 fast kernels' SASS in $OUT/sass_fast_kernels.txt
# 4. the gpu tests (test_kernels_gpu: every CUDA kernel bit-exact against the CPU path, the fast
#    rounding helpers against numerics.h on every float)
# 5. bench_kernels (GPU amax / quantize against copy bandwidth, CPU against a read pass)
# 6. bench/amax_torch_baseline.py (PyTorch's own loop and _foreach_norm on the same shapes)
# Files in $OUT: run_device.log (everything), build.log, sass.txt, ctest.log, bench_kernels.txt,
# amax_torch_baseline.txt. A summary is printed last; the exit code is non-zero when any
# build, check or test failed.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run_device.log") 2>&1
export PYTHONUNBUFFERED=1
BUILD=$ROOT/build-gpu
failures=()
step() { printf '\n===== %s =====\n' "$*"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv || true
nvcc --version | tail -n 2
cmake --version | head -n 1
g++ --version | head -n 1
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
echo "torch cmake prefix: ${TORCH_PREFIX:-none}"

# A copy of the tree that builds only the kernel layer, its gpu tests and bench_kernels, for when
# another area's CMake does not configure: the top level without LibTorch/MPI/JSON, src/ with
# kernels only, tests/ with mq_add_gtest and gpu/ only, bench/ with bench_kernels.cmake only.
kernels_only_tree() {
  local dst=$1
  rm -rf "$dst"
  mkdir -p "$dst/src" "$dst/tests" "$dst/bench"
  cp CMakeLists.txt "$dst/"
  cp -r include "$dst/"
  cp -r src/kernels "$dst/src/"
  cp -r tests/gpu "$dst/tests/"
  cp bench/bench_kernels.cmake bench/bench_kernels.cpp bench/bench_kernels_gpu.cu \
     bench/bench_kernels_gpu.h "$dst/bench/"
  python3 - "$dst" <<'PY'
import re, sys
dst = sys.argv[1]
top = open(f"{dst}/CMakeLists.txt").read()
top = re.sub(r"find_package\((Torch|MPI|nlohmann_json)[^)]*\)\n", "", top)
top = top.replace("add_subdirectory(examples)", "")
open(f"{dst}/CMakeLists.txt", "w").write(top)
open(f"{dst}/src/CMakeLists.txt", "w").write("add_subdirectory(kernels)\n")
tests = open("tests/CMakeLists.txt").read()
fn = tests[tests.index("function(mq_add_gtest"):]
fn = fn[: fn.index("endfunction()") + len("endfunction()")]
open(f"{dst}/tests/CMakeLists.txt", "w").write(
    "find_package(GTest REQUIRED)\nset(MOEQUANT_MPIEXEC mpiexec)\n" + fn + "\nadd_subdirectory(gpu)\n")
open(f"{dst}/bench/CMakeLists.txt", "w").write("include(${CMAKE_CURRENT_SOURCE_DIR}/bench_kernels.cmake)\n")
PY
}

step "configure"
SRC=$ROOT
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DMOEQUANT_BUILD_EXAMPLES=OFF)
if ! cmake -S "$SRC" -B "$BUILD" "${cmake_args[@]}" -DCMAKE_PREFIX_PATH="${TORCH_PREFIX};$ROOT/.deps" \
    > "$OUT/build.log" 2>&1; then
  tail -n 20 "$OUT/build.log"
  echo "!! the whole project did not configure; building the kernel targets from a kernels-only copy"
  SRC=/tmp/moequant-kernels-only
  BUILD=$SRC/build-gpu
  kernels_only_tree "$SRC"
  if ! cmake -S "$SRC" -B "$BUILD" "${cmake_args[@]}" >> "$OUT/build.log" 2>&1; then
    tail -n 30 "$OUT/build.log"
    echo "!! kernels-only configure failed too"
    exit 1
  fi
fi
grep -E "moequant:|CUDA compiler identification" "$OUT/build.log" || true

step "build test_kernels_gpu bench_kernels"
if cmake --build "$BUILD" --target test_kernels_gpu bench_kernels -j"${JOBS:-16}" >> "$OUT/build.log" 2>&1; then
  echo "build OK"
else
  failures+=("build")
fi
grep -iE "warning|error" "$OUT/build.log" | grep -v "^--" | head -n 40 || true
[ ${#failures[@]} -eq 0 ] || { tail -n 40 "$OUT/build.log"; exit 1; }

step "SASS of the kernel objects"
mapfile -t objs < <(find "$BUILD" -path '*moequant_kernels.dir*' -name '*.cu.o' | sort)
python3 bench/sass_report.py --dump "$OUT/sass_fast_kernels.txt" "${objs[@]}" | tee "$OUT/sass.txt" \
  || failures+=("sass")

step "gpu tests (test_kernels_gpu)"
(cd "$BUILD" && ctest -R '^test_kernels_gpu$' -V --timeout 900) 2>&1 \
  | tee "$OUT/ctest.log" || failures+=("gpu tests")

step "bench_kernels"
bench_args=()
[ -n "${FAST:-}" ] && bench_args+=(--gpu-only)
"$BUILD/bench/bench_kernels" "${bench_args[@]}" 2>&1 | tee "$OUT/bench_kernels.txt" \
  || failures+=("bench_kernels checks")

if [ -z "${FAST:-}" ]; then
  step "PyTorch baseline"
  python3 bench/amax_torch_baseline.py 2>&1 | tee "$OUT/amax_torch_baseline.txt" \
    || failures+=("torch baseline")
fi

step "summary"
grep -E "^# sass check" "$OUT/sass.txt" || true
grep -E "tests passed|tests failed|Passed|Failed|\*\*\*" "$OUT/ctest.log" | tail -n 8 || true
grep -A 20 "^# summary" "$OUT/bench_kernels.txt" || true
grep -E "^# checks" "$OUT/bench_kernels.txt" || true
[ -f "$OUT/amax_torch_baseline.txt" ] && { grep -E "copy|_foreach_norm|abs\(\)" \
  "$OUT/amax_torch_baseline.txt" | tail -n 3 || true; }
if [ ${#failures[@]} -eq 0 ]; then
  echo "run_device: all steps OK"
else
  echo "run_device: FAILED: ${failures[*]}"
  exit 1
fi
