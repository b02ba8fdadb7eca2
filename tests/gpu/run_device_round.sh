#!/usr/bin/env bash
# GPU-machine checks, in two calls of the device tool (from the repository root; carry .deps and
# .tok, see docs/device_runs.md):
#
#   bash tests/gpu/run_device_round.sh checks   build, GPU tests, kernel bench, GPU == CPU exports,
#                                               transformers / tokenizers references, eval
#   bash tests/gpu/run_device_round.sh export   bench/bench_export.sh on the 12-layer
#                                               Qwen3-30B-A3B shape (CPU ranks, CUDA, calibrated)
#   bash tests/gpu/run_device_round.sh scale1   build, GPU kernel tests in full, GPTQ timing (12
#                                               layers of Qwen3-30B-A3B's shape)
#   bash tests/gpu/run_device_round.sh scale2   DeepSeek-V3 FP8 and GPT-OSS MXFP4 sources to nvfp4
#                                               against cp (bench/bench_release_sources.sh; right
#                                               after scale1: the machine keeps the build while warm)
#   bash tests/gpu/run_device_round.sh gptq     GPTQ on CUDA == CPU and its timing; `final`: that and
#                                               the GPT-OSS benchmark of scale2
#   bash tests/gpu/run_device_round.sh gptoss   build the tool, the GPT-OSS benchmark alone (as
#                                               many layers as the disk holds; GPTOSS_LAYERS)
#   bash tests/gpu/run_device_round.sh coverage one call for the families, all-linear and GPTQ
#                                               round: the small model trained for docs/accuracy.md
#                                               and transformers' references (GPU, in the
#                                               background) while the tool builds, GPU tests, CUDA
#                                               == CPU exports of every family and option, then
#                                               the GPTQ, DeepSeek-V3 FP8 and GPT-OSS MXFP4
#                                               benchmarks, each only if BUDGET_S (default 520 s
#                                               from the start) leaves it its time
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

# Every tensor of two exports: weights byte-equal, static scales within 1e-4 relative.
cmp_dirs() { python3 - "$@" <<'PY'
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
scale = lambda k: k.endswith(("input_scale", "k_scale", "v_scale"))
w = [k for k in a if not scale(k)]
same = sum(a[k] == b.get(k) for k in w)
rel = [abs(struct.unpack("<f", a[k])[0] - struct.unpack("<f", b[k])[0]) / max(struct.unpack("<f", a[k])[0], 1e-30) for k in a if scale(k)]
print(f"{sys.argv[3]}: weights {same}/{len(w)} identical CUDA vs CPU" + (f"; scales max rel diff {max(rel):.1e}" if rel else ""))
sys.exit(0 if same == len(w) and (not rel or max(rel) < 1e-4) else 1)
PY
}
cuda_vs_cpu() { local name=$1; shift
  rm -rf /tmp/cc; mkdir -p /tmp/cc
  timed 30 "$TOOL" quantize "$@" --out /tmp/cc/cpu -q --device cpu || { fail+=("cpu $name"); return; }
  timed 30 "$TOOL" quantize "$@" --out /tmp/cc/gpu -q --device cuda || { fail+=("cuda $name"); return; }
  cmp_dirs /tmp/cc/cpu /tmp/cc/gpu "$name" || fail+=("cuda differs: $name"); }
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
        cmp_dirs /tmp/r/cpu_c /tmp/r/gpu_c "$m $f calibrated" || fail+=("cuda calibrated differs: $m $f")
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

if [[ $phase == coverage ]]; then
  START=$(date +%s)
  left() { echo $(( ${BUDGET_S:-520} - ($(date +%s) - START) )); }
  # Runs "$@" only if at least $1 seconds remain, bounded by what remains.
  since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
  timed() { local need=$1; shift; local l; l=$(left)
    if (( l < need )); then echo "SKIPPED (only ${l}s left, needs ${need}s): $*"; fail+=("skipped: $1 $2"); return 1; fi
    timeout "$l" "$@"; }
  step "machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc; df -h /tmp | tail -1
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

  # GPU python work in the background while the CPU builds: the model docs/accuracy.md is measured
  # on, then transformers' references for the FP8 source and the fused / MXFP4 layouts.
  (
    python3 bench/train_tiny_moe.py --tokenizer .tok/llama2/tokenizer.json --out /tmp/tiny-moe \
      --minutes "${TRAIN_MINUTES:-2.5}" --tie-embeddings > "$OUT/train.log" 2>&1 && echo "train: OK" >> "$OUT/train.log"
    tar cf - -C /tmp tiny-moe | gzip -1 | split -b 14m - "$OUT/tiny-moe.tar.gz.part-"
    python3 tests/gpu/transformers_fp8_reference.py --model "$FIX/deepseek_v3_fp8" \
      --out "$OUT/deepseek_v3_fp8" > "$OUT/fp8_reference.log" 2>&1
    python3 tests/gpu/transformers_layout_check.py --fixtures "$FIX" --device cuda \
      --out "$OUT/layouts" > "$OUT/layout_check.log" 2>&1
    echo "background: done" >> "$OUT/train.log"
  ) &
  bg=$!
  build moequant_tool test_kernels_gpu test_core_gpu test_forward_gpu

  step "GPU tests"
  (cd "$B" && timed 120 ctest -L gpu --output-on-failure 2>&1 | grep -E "Test +#|tests passed|Failed|\[  FAILED" ) || true
  (cd "$B" && ctest -L gpu 2>&1 | grep -q "100% tests passed") || fail+=("gpu tests")

  step "CUDA == CPU exports: every family, --quantize all-linear, --kv-cache fp8, GPTQ"
  CAL=(--calib-data random --calib-samples 8 --calib-seq-len 32)
  for m in deepseek_v3 glm4_moe olmoe gpt_oss qwen3_5_moe_text qwen3_next llama4_text; do
    [[ -d $FIX/$m ]] || continue
    cuda_vs_cpu "$m nvfp4" --model "$FIX/$m" --format nvfp4
  done
  cuda_vs_cpu "deepseek_v3_fp8 source nvfp4 calibrated" --model "$FIX/deepseek_v3_fp8" --format nvfp4 "${CAL[@]}"
  for m in olmoe gpt_oss; do
    [[ -d $FIX/$m ]] && cuda_vs_cpu "$m fp8 calibrated" --model "$FIX/$m" --format fp8 "${CAL[@]}"
  done
  cuda_vs_cpu "qwen3moe all-linear + kv fp8" --model "$FIX/qwen3moe" --format fp8 --quantize all-linear --kv-cache fp8 "${CAL[@]}"
  cuda_vs_cpu "deepseek_v3 all-linear all-experts" --model "$FIX/deepseek_v3" --format nvfp4 --quantize all-linear --calib-all-experts "${CAL[@]}"
  cuda_vs_cpu "glm4_moe all-linear" --model "$FIX/glm4_moe" --format int4 --quantize all-linear
  for f in int4 nvfp4; do
    cuda_vs_cpu "qwen3moe gptq $f" --model "$FIX/qwen3moe" --format $f --algorithm gptq --gptq-min-tokens 8 "${CAL[@]}"
  done

  step "GPTQ on the 12-layer Qwen3-30B-A3B shape, 128 x 2048 tokens, against --calib-data max"
  Q=/tmp/q30
  if timed 120 "$TOOL" generate --out $Q --layers 12 --experts 128 --hidden 2048 --intermediate 768 \
       --shards 12 --heads 32 --kv-heads 4 --head-dim 128 --vocab 151936 --top-k 8 > /dev/null; then
    CAL30=(--calib-data random --calib-samples 128 --calib-seq-len 2048 --device cuda --format int4)
    for alg in max gptq; do
      rm -rf /tmp/q30-$alg
      t0=$(date +%s.%N)
      timed 200 "$TOOL" quantize --model $Q --out /tmp/q30-$alg "${CAL30[@]}" --algorithm $alg \
        --report-json "$OUT/gptq30_$alg.json" 2>&1 | tail -4 || fail+=("q30 $alg")
      echo "$alg: wall $(since $t0) s"
      rm -rf /tmp/q30-$alg
    done
  fi
  rm -rf $Q

  step "DeepSeek-V3 FP8 (2 layers) and GPT-OSS MXFP4 (8 layers) sources to nvfp4 against cp"
  timed 240 bash bench/bench_release_sources.sh --family deepseek_v3 --layers 2 --tool "$TOOL" \
    --work /tmp/bench-release --report-dir "$OUT" || fail+=("dsv3")
  timed 200 bash bench/bench_release_sources.sh --family gpt_oss --layers 8 --tool "$TOOL" \
    --work /tmp/bench-release --report-dir "$OUT" || fail+=("gptoss")

  step "background (training, transformers references)"
  l=$(left); (( l > 5 )) && timeout "$((l - 5))" tail --pid=$bg -f /dev/null
  kill $bg 2>/dev/null
  tail -5 "$OUT/train.log"; tail -3 "$OUT/fp8_reference.log" "$OUT/layout_check.log" 2>/dev/null
  grep -q "train: OK" "$OUT/train.log" || fail+=("training")
  # At most 8 files come back: the log, the model's parts and one archive of everything else.
  # The archive is written outside $OUT (tar would otherwise read its own output) and the
  # clean-up runs whatever tar says about files a late background writer still touches.
  (cd "$OUT" && { tar czf /tmp/results.tar.gz --warning=no-file-changed \
     --exclude='tiny-moe.tar.gz.part-*' --exclude="round_$phase.log" . || true; } &&
     find . -mindepth 1 -not -name 'tiny-moe.tar.gz.part-*' -not -name "round_$phase.log" -delete &&
     mv /tmp/results.tar.gz results.tar.gz)
fi

# Two calls on one warm machine (each under the device tool's 10 minutes): `scale1` builds, runs
# the batched-kernel tests with their full output and the 12-layer GPTQ timing; `scale2` the
# DeepSeek-V3 FP8 and GPT-OSS MXFP4 source benchmarks against cp of the same folder.
if [[ $phase == scale1 || $phase == scale2 || $phase == gptq || $phase == final || $phase == gptoss ]]; then
  START=$(date +%s)
  since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
  step "machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc; free -g | head -2; df -h /tmp | tail -1
  if [[ $phase == gptq || $phase == final ]]; then build moequant_tool test_core_gpu
  elif [[ $phase == gptoss ]]; then build moequant_tool
  elif [[ ! -x $TOOL || ! -x $B/tests/gpu/test_kernels_gpu ]]; then build moequant_tool test_kernels_gpu; fi
fi

# The GPTQ engine on CUDA against the CPU (test_core_gpu, exports of the fixture), then its timing.
if [[ $phase == gptq || $phase == final ]]; then
  step "test_core_gpu (GPTQ on CUDA == CPU)"
  "$B/tests/unit/test_core_gpu" --gtest_brief=1 2>&1 | tail -12 || fail+=("test_core_gpu")
  timed() { shift; timeout 120 "$@"; }
  CAL=(--calib-data random --calib-samples 8 --calib-seq-len 32)
  for f in int4 nvfp4; do
    cuda_vs_cpu "qwen3moe gptq $f" --model "$FIX/qwen3moe" --format $f --algorithm gptq --gptq-min-tokens 8 "${CAL[@]}"
  done
fi

if [[ $phase == scale1 ]]; then
  step "GPU kernel tests (full output of the batched ones, the descriptor-ring test 5 times)"
  "$B/tests/gpu/test_kernels_gpu" --gtest_brief=1 2>&1 | tail -30 || fail+=("test_kernels_gpu")
  "$B/tests/gpu/test_kernels_gpu" --gtest_filter='GpuQuantizeBatched.StreamsAndGrowing*' \
    --gtest_repeat=5 --gtest_brief=1 2>&1 | tail -30 || fail+=("descriptor ring test")

  step "CUDA == CPU: --quantize all-linear, --kv-cache fp8, --calib-all-experts on every family"
  timed() { shift; timeout 120 "$@"; }
  CAL=(--calib-data random --calib-samples 8 --calib-seq-len 32)
  for m in qwen3moe mixtral qwen2_moe deepseek_v3 deepseek_v3_fp8 glm4_moe olmoe gpt_oss; do
    kv=(--kv-cache fp8); [[ $m == deepseek_v3* ]] && kv=()  # refused for MLA (docs/formats.md)
    cuda_vs_cpu "$m nvfp4 all-linear ${kv[*]} all-experts" --model "$FIX/$m" --format nvfp4 \
      --quantize all-linear "${kv[@]}" --calib-all-experts "${CAL[@]}"
  done
  for m in qwen3_next qwen3_5_moe_text llama4_text; do  # calibration is refused for these
    cuda_vs_cpu "$m fp8 all-linear" --model "$FIX/$m" --format fp8 --quantize all-linear
  done

fi

if [[ $phase == scale1 || $phase == gptq || $phase == final ]]; then
  step "GPTQ on the 12-layer Qwen3-30B-A3B shape, 128 x 2048 tokens, against --calib-data max"
  Q=/tmp/q30; rm -rf $Q
  t0=$(date +%s.%N)
  timeout 200 "$TOOL" generate --out $Q --layers 12 --experts 128 --hidden 2048 --intermediate 768 \
    --shards 12 --heads 32 --kv-heads 4 --head-dim 128 --vocab 151936 --top-k 8 || fail+=("generate q30")
  echo "generate: $(since $t0) s"; du -sb $Q
  CAL30=(--calib-data random --calib-samples 128 --calib-seq-len 2048 --device cuda --format int4)
  for alg in max gptq; do
    rm -rf /tmp/q30-$alg
    t0=$(date +%s.%N)
    timeout 240 "$TOOL" quantize --model $Q --out /tmp/q30-$alg "${CAL30[@]}" --algorithm $alg \
      --no-table --report-json "$OUT/gptq30_$alg.json" 2>&1 | tail -4 || fail+=("q30 $alg")
    echo "$alg: wall $(since $t0) s"
    rm -rf /tmp/q30-$alg
  done
  rm -rf $Q
fi

# The release-source benchmarks (bench/bench_release_sources.sh: generated source, its cp, each
# device's nvfp4 export, all timed with sync in one run, CUDA == CPU by hash).
if [[ $phase == scale2 || $phase == final || $phase == gptoss ]]; then
  if [[ $phase == scale2 ]]; then
    step "DeepSeek-V3-shaped FP8 source to nvfp4 against cp"
    bash bench/bench_release_sources.sh --family deepseek_v3 --tool "$TOOL" --work /tmp/bench-release \
      --report-dir "$OUT" ${DS_LAYERS:+--layers $DS_LAYERS} || fail+=("dsv3")
  fi
  # 8 layers in scale2 / final (time for the rest of the round); gptoss: as many as the disk holds.
  go_layers=8; [[ $phase == gptoss ]] && go_layers=""
  go_layers=${GPTOSS_LAYERS:-$go_layers}
  step "GPT-OSS-120B-shaped MXFP4 source to nvfp4 against cp"
  bash bench/bench_release_sources.sh --family gpt_oss --tool "$TOOL" --work /tmp/bench-release \
    --report-dir "$OUT" ${go_layers:+--layers $go_layers} || fail+=("gptoss")
  if [[ $phase == gptoss ]]; then
    step "transformers on the MXFP4 fixture: where its logits leave the bf16 model's (diagnostics)"
    timeout 120 python3 tests/gpu/transformers_layout_check.py --fixtures "$FIX" --device cuda 2>&1 |
      grep -v -i "warn\|missing\|falling back" | tail -16
  fi
fi

step "summary"
if [[ ${#fail[@]} -eq 0 ]]; then echo "round $phase: all steps OK"; else echo "round $phase: FAILED: ${fail[*]}"; exit 1; fi
