#!/usr/bin/env bash
# The accuracy table of docs/accuracy.md: every format x algorithm exported from the model
# bench/train_tiny_moe.py trains, then `moequant eval` on its held-out sequences.
#   bash bench/accuracy_tiny_moe.sh MODEL_DIR WORK_DIR [moequant binary] [--device cuda]
# MODEL_DIR holds config.json, model.safetensors, tokenizer.json, calib.jsonl, heldout.jsonl.
set -euo pipefail
model=${1:?model folder}; work=${2:?work folder}; mq=${3:-build/src/tool/moequant}
device=${DEVICE:-cpu}
mkdir -p "$work"
calib=(--calib-data "$model/calib.jsonl" --calib-seq-len 256)
run() { # name, then quantize arguments
  local name=$1; shift
  [[ -f "$work/$name/config.json" ]] && return 0
  echo "== $name: $*"
  "$mq" quantize --model "$model" --out "$work/$name" --overwrite --device "$device" --no-table \
    --report-json "$work/$name.report.json" "$@" > "$work/$name.log" 2>&1 ||
    { tail -5 "$work/$name.log"; return 1; }
  grep -E "GPTQ|warning" "$work/$name.log" | head -3 || true
}
run int4-max --format int4
run int4-gptq --format int4 --algorithm gptq "${calib[@]}"
run nvfp4-w-max --format nvfp4
run nvfp4-max --format nvfp4 "${calib[@]}"
run nvfp4-gptq --format nvfp4 --algorithm gptq "${calib[@]}"
run fp8-w --format fp8
run fp8 --format fp8 "${calib[@]}"
run fp8_block --format fp8_block
names=(int4-max int4-gptq nvfp4-w-max nvfp4-max nvfp4-gptq fp8-w fp8 fp8_block)
"$mq" eval --source "$model" --data "$model/heldout.jsonl" --seq-len 256 --device "$device" \
  --quantized "${names[@]/#/$work/}" | tee "$work/eval.txt"
