#!/usr/bin/env bash
# Quantized releases read as they are, at storage speed: `moequant quantize --format nvfp4` of a
# generated DeepSeek-V3-shaped FP8 block source or a GPT-OSS-120B-shaped MXFP4 source against
# `cp -r` of the same folder, measured in ONE run (the source read once first, so that cp and
# every export read it from the page cache; each command timed with its `sync`).
#
#   bench/bench_release_sources.sh --family gpt_oss|deepseek_v3 [--layers N] [--tool BIN]
#                                  [--work DIR] [--devices cpu,cuda] [--report-dir DIR]
#
# --layers defaults to as many of the release's layers as the free disk holds with the source
# and its cp, or the source and one export (each export is hashed and deleted before the next).
# Prints, per device: seconds, the ratio to cp, the job's stages and peak RSS (from
# --report-json), and for CUDA whether every output file hashes as the CPU's. Exit 1 when an
# export fails or CUDA differs from CPU.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
tool="${MOEQUANT_TOOL:-$root/build/src/tool/moequant}"
work="${TMPDIR:-/tmp}/moequant-bench-release"
family="" layers="" devices="cpu" report_dir=""
command -v nvidia-smi > /dev/null 2>&1 && devices="cpu,cuda"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --family) family="$2"; shift 2 ;;
    --layers) layers="$2"; shift 2 ;;
    --tool) tool="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --devices) devices="$2"; shift 2 ;;
    --report-dir) report_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench_release_sources.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
mkdir -p "$work"
report_dir="${report_dir:-$work}"
free_gb=$(df -BG --output=avail "$work" | tail -1 | tr -dc 0-9)
case "$family" in
  gpt_oss)  # 1.75 GB a layer + 2.3 GB of embeddings; an nvfp4 export is 1.05 x the source
    max=36 per_layer=1.75 fixed=2.3
    gen=(--model-type gpt_oss --source-dtype mxfp4 --experts 128 --hidden 2880 --intermediate 2880
         --top-k 4 --heads 64 --kv-heads 8 --head-dim 64 --vocab 201088) ;;
  deepseek_v3)  # 11.3 GB a MoE layer in FP8 + 3.7 GB of embeddings
    max=58 per_layer=11.4 fixed=4
    gen=(--model-type deepseek_v3 --source-dtype fp8 --mtp-layers 0 --experts 256 --hidden 7168
         --intermediate 2048 --dense-intermediate 2048 --top-k 8 --heads 128 --head-dim 128
         --vocab 129280) ;;
  *) echo "bench_release_sources.sh: --family gpt_oss or deepseek_v3" >&2; exit 2 ;;
esac
if [[ -z $layers ]]; then  # the source S twice (its cp), or S and 1.05 S (one export), + 4 GB
  layers=$(awk -v f="$free_gb" -v p="$per_layer" -v x="$fixed" -v m="$max" \
    'BEGIN { l = int(((f - 4) / 2.1 - x) / p); if (l > m) l = m; if (l < 1) l = 1; print l }')
fi
src="$work/$family"
rm -rf "$src" "$src"-*
echo "== $family release source, $layers layers, ${free_gb} GB free in $work"
t0=$(date +%s.%N)
"$tool" generate --out "$src" "${gen[@]}" --layers "$layers" --shards "$layers" || exit 1
echo "generate: $(since "$t0") s; $(du -sb "$src" | cut -f1) bytes"
sync; cat "$src"/* > /dev/null
t0=$(date +%s.%N); cp -r "$src" "$src-cp"; sync; cp_s=$(since "$t0")
rm -rf "$src-cp"; sync
printf '%-28s %9s %12s\n' command seconds "ratio to cp"
printf '%-28s %9s %12s\n' "cp -r + sync" "$cp_s" 1
status=0
for dev in ${devices//,/ }; do
  out="$src-$dev" report="$report_dir/${family}_$dev.json"
  t0=$(date +%s.%N)
  "$tool" quantize --model "$src" --out "$out" --format nvfp4 --device "$dev" -q \
    --report-json "$report" || { echo "quantize --device $dev failed"; status=1; continue; }
  sync; q_s=$(since "$t0")
  printf '%-28s %9s %12s\n' "quantize nvfp4 $dev + sync" "$q_s" \
    "$(awk -v c="$cp_s" -v q="$q_s" 'BEGIN { printf "%.2f", c / q }')"
  python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
k = r["ranks"][0]
stages = {s: round(v, 2) for s, v in r["seconds"].items() if v}
extra = f", e2m1 blocks kept {k['e2m1_blocks'] - k['e2m1_requantized_blocks']} of {k['e2m1_blocks']}" if k.get("e2m1_blocks") else ""
print(f"    job {stages}, threads {k['threads']}, peak RSS {k['peak_rss_bytes'] / 1e9:.1f} GB{extra}")
PY
  (cd "$out" && ls | xargs -P"$(nproc)" -n1 sha256sum | sort -k2) > "$work/$dev.sums"
  rm -rf "$out"; sync
done
if [[ -f $work/cpu.sums && -f $work/cuda.sums ]]; then
  if cmp -s "$work/cpu.sums" "$work/cuda.sums"; then
    echo "CUDA == CPU ($(wc -l < "$work/cpu.sums") files, SHA-256)"
  else
    echo "CUDA differs from CPU"; status=1
  fi
fi
rm -rf "$src" "$work"/*.sums
exit $status
