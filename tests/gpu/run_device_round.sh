#!/usr/bin/env bash
# GPU-machine checks, in two calls of the device tool (from the repository root; carry .deps and
# .tok, see docs/device_runs.md):
#
#   bash tests/gpu/run_device_round.sh checks   build, GPU tests, kernel bench, GPU == CPU exports,
#                                               transformers / tokenizers references, eval
#   bash tests/gpu/run_device_round.sh export   bench/bench_export.sh on the 12-layer
#                                               Qwen3-30B-A3B shape (CPU ranks, CUDA, calibrated)
#
# Logs and the files worth keeping land in $OUT; a summary is printed last; non-zero exit when a
# step failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
phase=${1:-checks}
exec > >(tee -a "$OUT/round_$phase.log") 2>&1
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
B=$ROOT/build-gpu
TOOL=$B/src/tool/moequant
FIX=$ROOT/tests/data/hf
fail=()
step() { printf '\n===== %s (%s) =====\n' "$*" "$(date +%T)"; }
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')

build() {
  step "build $*"
  if [[ ! -f $B/CMakeCache.txt ]]; then
    cmake -S "$ROOT" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
      -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/.deps" > "$OUT/build_$phase.log" 2>&1 ||
      { tail -40 "$OUT/build_$phase.log"; exit 1; }
  fi
  cmake --build "$B" --target "$@" -j16 >> "$OUT/build_$phase.log" 2>&1 ||
    { grep -E "error" -A3 "$OUT/build_$phase.log" | head -60; exit 1; }
  echo "build OK"
}

if [[ $phase == checks ]]; then
  step "machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  nproc; free -g | head -2; df -h "$ROOT" /tmp | tail -2
  build moequant_tool test_kernels_gpu test_hf_gpu nccl_world_of_one_test bench_kernels_gpu \
    test_formats

  step "GPU tests (kernels per-matrix and batched bit-exact vs CPU, forward on CUDA, NCCL)"
  (cd "$B" && ctest -L gpu --output-on-failure -V 2>&1 | grep -E "Test +#|tests passed|Failed|SKIP|cuda - cpu|\[  (PASSED|FAILED) \]" ) || fail+=("gpu tests")
  (cd "$B" && ctest -L gpu 2>&1 | grep -q "100% tests passed") || fail+=("gpu tests")

  step "batched quantize kernels vs one launch per matrix vs copy"
  "$B/bench/bench_kernels_gpu" > "$OUT/bench_kernels_gpu.txt" 2>&1 || fail+=("bench_kernels_gpu")
  tail -40 "$OUT/bench_kernels_gpu.txt"

  step "exports: CUDA (batched kernels) == CPU, every fixture and format; calibrated CUDA vs CPU"
  for m in qwen3moe mixtral qwen2_moe; do
    for f in fp8 nvfp4 fp8_block int4; do
      rm -rf /tmp/r; mkdir -p /tmp/r
      "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/r/cpu -q || fail+=("cpu $m $f")
      "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/r/gpu -q --device cuda || fail+=("gpu $m $f")
      if diff -r /tmp/r/cpu /tmp/r/gpu > /dev/null; then echo "$m $f: CUDA export identical to CPU"; else echo "$m $f: CUDA DIFFERS"; fail+=("$m $f cuda differs"); fi
      if [[ $f == fp8 || $f == nvfp4 ]]; then
        "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/r/cpu_c -q --calib-data random --calib-seq-len 32 || fail+=("cpu calib $m $f")
        "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/r/gpu_c -q --calib-data random --calib-seq-len 32 --device cuda || fail+=("gpu calib $m $f")
        python3 tests/export/engine_schema.py --source "$FIX/$m" --quantized /tmp/r/gpu_c --format $f --calibrated | tail -1 || fail+=("schema $m $f")
        python3 - /tmp/r/cpu_c /tmp/r/gpu_c "$m $f" <<'PY'
import json, struct, sys
def tensors(d):
    out = {}
    idx = json.load(open(d + "/model.safetensors.index.json"))["weight_map"]
    for fn in sorted(set(idx.values())):
        b = open(d + "/" + fn, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
        for k, v in json.loads(b[8:8 + n]).items():
            if k != "__metadata__": out[k] = b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
    return out
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
w = [k for k in a if not k.endswith("input_scale")]
same_w = sum(a[k] == b[k] for k in w)
rel = [abs(struct.unpack("<f", a[k])[0] - struct.unpack("<f", b[k])[0]) / struct.unpack("<f", a[k])[0] for k in a if k.endswith("input_scale")]
print(f"{sys.argv[3]} calibrated: weights {same_w}/{len(w)} identical CUDA vs CPU; input_scale max rel diff {max(rel):.2e}, {sum(r == 0 for r in rel)}/{len(rel)} identical")
PY
      fi
    done
  done

  step "transformers reads the exports (fp8_block dequantized; every fp8 flavour as declared)"
  for m in qwen3moe mixtral; do
    for f in fp8_block fp8; do
      rm -rf "/tmp/hf_${m}_$f"
      "$TOOL" quantize --model "$FIX/$m" --format $f --out "/tmp/hf_${m}_$f" -q --device cuda
    done
    python3 tests/gpu/hf_client_check.py "$FIX/$m" "/tmp/hf_${m}_fp8_block" 2>&1 | grep -vE "Warning|warn" | tail -2 || fail+=("hf fp8_block $m")
    for f in fp8_block fp8; do
      echo "-- $m $f as declared:"
      python3 tests/gpu/hf_client_check.py "$FIX/$m" "/tmp/hf_${m}_$f" --as-declared 2>&1 | grep -vE "Warning|warn" | tail -3
    done
  done

  step "Hugging Face tokenizers: the expected ids of the tokenizer tests"
  if [[ -f .tok/qwen3/tokenizer.json ]]; then
    python3 tests/data/tokenizer/make_expected.py qwen3=.tok/qwen3/tokenizer.json \
      llama2=.tok/llama2/tokenizer.json 2>&1 | tail -5 || fail+=("make_expected")
    cp tests/data/tokenizer/expected_qwen3.json tests/data/tokenizer/expected_llama2.json "$OUT/" 2>/dev/null
    python3 -c "import tokenizers; print('tokenizers', tokenizers.__version__)"
  else
    echo "no .tok/ carried: skipped"; fail+=("tokenizer files not carried")
  fi

  step "eval on the fixtures, every format (CUDA)"
  for m in qwen3moe mixtral; do
    rm -rf /tmp/ev; mkdir -p /tmp/ev
    for f in fp8 nvfp4 fp8_block int4; do
      "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/ev/$f -q --device cuda
      [[ $f == fp8 || $f == nvfp4 ]] && "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/ev/$f-w8a8 -q --device cuda --calib-data random --calib-seq-len 64
    done
    "$TOOL" eval --source "$FIX/$m" --data random --seed 5 --seq-len 64 --samples 32 --device cuda -q \
      $(for q in /tmp/ev/*; do echo --quantized $q; done) || fail+=("eval $m")
  done
fi

if [[ $phase == export ]]; then
  [[ -x $TOOL ]] || build moequant_tool
  step "machine"
  nproc; free -g | head -2; df -h /tmp | tail -1
  step "export benchmark: 12-layer Qwen3-30B-A3B shape"
  bash bench/bench_export.sh --tool "$TOOL" --work /tmp/mqbench --layers "${LAYERS:-12}" \
    --formats "${FORMATS:-nvfp4,fp8,fp8_block,int4}" --ranks "${RANKS:-1,2,4,8}" --cuda --calib \
    2>&1 | tee "$OUT/bench_export.txt" || fail+=("bench_export")
  tar czf "$OUT/bench_export_reports.tar.gz" -C /tmp/mqbench $(cd /tmp/mqbench && ls report-*.json log-*.txt 2>/dev/null) 2>/dev/null || true
fi

step "summary"
if [[ ${#fail[@]} -eq 0 ]]; then echo "round $phase: all steps OK"; else echo "round $phase: FAILED: ${fail[*]}"; exit 1; fi
