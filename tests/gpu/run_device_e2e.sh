#!/usr/bin/env bash
# End-to-end GPU checks on the device machine (one GPU), in one call:
#   bash tests/gpu/run_device_e2e.sh        (repo root; needs .deps carried)
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
FIX=$ROOT/tests/data/hf
fail=()
step() { printf '\n===== %s =====\n' "$*"; }
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')

step "build"
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/.deps" > "$OUT/e2e_build.log" 2>&1 || { tail -30 "$OUT/e2e_build.log"; exit 1; }
targets=(moequant_tool nccl_world_of_one_test megatron_style_loop test_kernels_gpu ${E2E_EXTRA_TARGETS:-})
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
    "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/e2e/cpu -q --no-table --allow-partial-blocks || { fail+=("cpu $m $f"); continue; }
    "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/e2e/gpu --device cuda -q --no-table --allow-partial-blocks || fail+=("gpu $m $f")
    torchrun --nproc-per-node 1 --no-python "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/e2e/trun --device cuda -q --no-table --allow-partial-blocks || fail+=("torchrun $m $f")
    mpirun -np 1 "$TOOL" quantize --model "$FIX/$m" --format $f --out /tmp/e2e/mpi --device cuda -q --no-table --allow-partial-blocks || fail+=("mpirun $m $f")
    for v in gpu trun mpi; do
      if diff -r /tmp/e2e/cpu /tmp/e2e/$v > /dev/null; then echo "$m $f $v: identical to CPU"; else echo "$m $f $v: DIFFERS"; fail+=("$m $f $v differs"); fi
    done
  done
done

step "transformers loads the fp8_block exports"
for m in qwen3moe mixtral; do
  rm -rf "/tmp/hf_$m"
  "$TOOL" quantize --model "$FIX/$m" --format fp8_block --out "/tmp/hf_$m" -q --no-table --device cuda --allow-partial-blocks
  python3 tests/gpu/hf_client_check.py "$FIX/$m" "/tmp/hf_$m" 2>&1 | grep -vE "Warning|warn" | tail -5 || fail+=("hf client $m")
done
step "GPU kernels bit-exact against the CPU path"
(cd "$B" && ctest -L gpu --output-on-failure) 2>&1 | tail -15 || fail+=("gpu tests")

step "training-loop example on CUDA tensors (NCCL world of one, host-owned ncclComm_t)"
LOOP=$(find "$B" -name megatron_style_loop -type f | head -1)
for dev in cpu cuda; do
  rm -rf /tmp/loop_$dev /tmp/loopw_$dev
  # weights-only: same seeded weights, no training, no activations -> identical bytes expected
  mpirun -np 1 "$LOOP" --skip-train --calib-batches 0 --format nvfp4 --seed 5 --device $dev --out /tmp/loopw_$dev > /tmp/loopw_$dev.log 2>&1 || { cat /tmp/loopw_$dev.log; fail+=("loop weights $dev"); }
  # full run: training steps, input calibration, export with input_scale
  mpirun -np 1 "$LOOP" --steps 12 --calib-batches 4 --format fp8 --seed 5 --device $dev --out /tmp/loop_$dev > /tmp/loop_$dev.log 2>&1 || { cat /tmp/loop_$dev.log; fail+=("loop $dev"); }
  grep -iE "loss|warning|collective|export" /tmp/loop_$dev.log | tail -8
done
diff -r /tmp/loopw_cpu /tmp/loopw_cuda > /dev/null && echo "loop weights-only export: CUDA == CPU" || { echo "loop weights-only export: DIFFERS"; fail+=("loop cpu/cuda"); }
python3 - <<'PY'
import json, struct
def tensors(d):
    out = {}
    idx = json.load(open(d + "/model.safetensors.index.json"))["weight_map"]
    for f in sorted(set(idx.values())):
        b = open(d + "/" + f, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
        for k, v in h.items():
            if k != "__metadata__": out[k] = b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]
    return out
a, b = tensors("/tmp/loop_cpu"), tensors("/tmp/loop_cuda")
same = sum(a[k] == b[k] for k in a)
print(f"loop with training + input calibration: {same}/{len(a)} tensors byte-identical CPU vs CUDA")
for k in sorted(a):
    if k.endswith("input_scale"):
        x, y = struct.unpack("<f", a[k])[0], struct.unpack("<f", b[k])[0]
        print(f"  {k}: cpu {x:.9g} cuda {y:.9g} rel {abs(x-y)/max(abs(x),1e-30):.2e}"); break
PY

[ -n "${E2E_EXTRA_CMD:-}" ] && { step "extra"; bash -c "$E2E_EXTRA_CMD" || fail+=("extra"); }

step "summary"
if [ ${#fail[@]} -eq 0 ]; then echo "e2e: all steps OK"; else echo "e2e: FAILED: ${fail[*]}"; exit 1; fi
