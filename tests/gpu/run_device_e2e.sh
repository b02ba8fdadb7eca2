#!/usr/bin/env bash
# End-to-end GPU checks on the device machine (one GPU), in one call:
#   bash tests/gpu/run_device_e2e.sh        (repo root; needs .deps and .fixtures carried)
# 1. build the tool, the NCCL world-of-one test, the training-loop example (sm_90a)
# 2. NCCL backend as a world of 1: plain, torchrun --nproc-per-node 1 --no-python, mpirun -np 1
# 3. the tool with weights on the GPU (plain, torchrun, mpirun) == the CPU run, every format
# 4. the fp8_block exports load in transformers; logits vs the bf16 model
# Logs in $OUT; a summary last; non-zero exit when a step failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/e2e.log") 2>&1
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
B=$ROOT/build-gpu
FIX=$ROOT/.fixtures
fail=()
step() { printf '\n===== %s =====\n' "$*"; }
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')

step "build"
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/.deps" > "$OUT/e2e_build.log" 2>&1 || { tail -30 "$OUT/e2e_build.log"; exit 1; }
targets=(moequant_tool nccl_world_of_one_test ${E2E_EXTRA_TARGETS:-})
cmake --build "$B" --target "${targets[@]}" -j16 >> "$OUT/e2e_build.log" 2>&1 || { grep -E "error" -A3 "$OUT/e2e_build.log" | head -40; exit 1; }
echo "build OK"
TOOL=$B/src/tool/moequant

step "NCCL world of one"
T=$(find "$B" -name nccl_world_of_one_test -type f | head -1)
"$T" && echo "plain: OK" || fail+=("nccl plain")
torchrun --nproc-per-node 1 --no-python "$T" && echo "torchrun: OK" || fail+=("nccl torchrun")
mpirun -np 1 "$T" && echo "mpirun: OK" || fail+=("nccl mpirun")

step "tool: GPU == CPU"
for m in qwen3moe mixtral; do
  for f in none fp8 nvfp4 fp8_block int4; do
    rm -rf /tmp/e2e; mkdir -p /tmp/e2e
    "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/e2e/cpu -q --no-table || { fail+=("cpu $m $f"); continue; }
    "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/e2e/gpu --device cuda -q --no-table || fail+=("gpu $m $f")
    torchrun --nproc-per-node 1 --no-python "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/e2e/trun --device cuda -q --no-table || fail+=("torchrun $m $f")
    mpirun -np 1 "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/e2e/mpi --device cuda -q --no-table || fail+=("mpirun $m $f")
    for v in gpu trun mpi; do
      if diff -r /tmp/e2e/cpu /tmp/e2e/$v > /dev/null; then echo "$m $f $v: identical to CPU"; else echo "$m $f $v: DIFFERS"; fail+=("$m $f $v differs"); fi
    done
  done
done

step "transformers loads the fp8_block exports"
for m in qwen3moe mixtral; do
  rm -rf "/tmp/hf_$m"
  "$TOOL" quantize --model "$FIX/$m" --format fp8_block --out "/tmp/hf_$m" -q --no-table --device cuda
  python3 tests/gpu/hf_client_check.py "$FIX/$m" "/tmp/hf_$m" 2>&1 | grep -vE "Warning|warn" | tail -5 || fail+=("hf client $m")
done
[ -n "${E2E_EXTRA_CMD:-}" ] && { step "extra"; bash -c "$E2E_EXTRA_CMD" || fail+=("extra"); }

step "summary"
if [ ${#fail[@]} -eq 0 ]; then echo "e2e: all steps OK"; else echo "e2e: FAILED: ${fail[*]}"; exit 1; fi
