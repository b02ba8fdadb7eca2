#!/usr/bin/env python3
"""Layout invariance of the exporter, through the tool as a user runs it.

For each model and format, the export of a single rank is the reference; the same export under
mpirun with every layout (TP2, EP2, EP4, TP2xEP2, ETP2xEP2, EP2xPP2) must produce the same
folder: the same files with the same bytes (tensors, index, config.json, hf_quant_config.json).
When tests/export/formats_reference.py is present, the reference export is also checked
bit-exactly against docs/formats.md recomputed from the source weights by that independent checker.

With --calibrate, every export is calibrated with data (the same seeded token ids, written to a
.jsonl): the forward runs data-parallel, the experts' tokens travel over EP/ETP, stages pass
hidden states; then weights must be bit-identical, and input scales equal bit for bit where the
arithmetic allows, otherwise within 2^-20 relative (the sums inside a layer may be grouped
differently per layout; the count of bit-identical ones is printed). Each reference export is also
read by engine_schema.py as the engines read it.

With --extra "--quantize all-linear --kv-cache fp8" (any quantize flags) every export gets those
flags too: the dense linears are split over TP the Megatron way for calibration and gathered by
their producer, KV-cache amax is reduced over DP/TP; the bytes must not depend on the layout.

usage: layout_invariance.py --tool BIN --mpiexec "mpiexec --oversubscribe ..." --model DIR
                            [--model DIR ...] [--formats fp8,nvfp4,...] [--calibrate]
                            [--extra "FLAGS"]
"""
import argparse
import filecmp
import json
import os
import random
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile

LAYOUTS = [
    ("TP2", 2, ["--tp", "2"]),
    ("EP2", 2, ["--ep", "2"]),
    ("EP4", 4, ["--ep", "4"]),
    ("TP2xEP2", 4, ["--tp", "2", "--ep", "2"]),
    ("ETP2xEP2", 4, ["--etp", "2", "--ep", "2"]),
    ("EP2xPP2", 4, ["--ep", "2", "--pp", "2"]),
]


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        print("FAILED:", " ".join(cmd), "\n", p.stdout)
    return p.returncode == 0


def same_folder(a, b):
    names_a, names_b = sorted(os.listdir(a)), sorted(os.listdir(b))
    if names_a != names_b:
        return f"file lists differ: {names_a} vs {names_b}"
    for n in names_a:
        if not filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False):
            return f"{n} differs"
    return None


def tensors(folder):
    out = {}
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    for fn in files:
        with open(os.path.join(folder, fn), "rb") as f:
            b = f.read()
        n = struct.unpack("<Q", b[:8])[0]
        for k, v in json.loads(b[8:8 + n]).items():
            if k != "__metadata__":
                out[k] = b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
    return out


def same_calibrated(a, b, stats):
    """Weights bit-identical; input scales bit-identical or within 2^-20 relative."""
    for n in ("config.json", "model.safetensors.index.json", "hf_quant_config.json"):
        pa, pb = os.path.join(a, n), os.path.join(b, n)
        if os.path.exists(pa) != os.path.exists(pb) or (
                os.path.exists(pa) and not filecmp.cmp(pa, pb, shallow=False)):
            return f"{n} differs"
    ta, tb = tensors(a), tensors(b)
    if sorted(ta) != sorted(tb):
        return "tensor lists differ"
    for k, va in ta.items():
        activation = k.endswith("input_scale") or k.endswith("k_scale") or k.endswith("v_scale")
        if va == tb[k]:
            stats["identical"] += activation
            continue
        if not activation:
            return f"{k} differs"
        x, y = struct.unpack("<f", va)[0], struct.unpack("<f", tb[k])[0]
        if abs(x - y) > abs(x) * 2.0 ** -20:
            return f"{k}: {x!r} vs {y!r}, beyond 2^-20 relative"
        stats["within"] += 1
    return None


def write_calibration_ids(model, path, samples=8, seq_len=16, seed=11):
    with open(os.path.join(model, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(samples):
            f.write(json.dumps({"input_ids": [rng.randrange(vocab) for _ in range(seq_len)]}) + "\n")
    return ["--calib-data", path, "--calib-seq-len", str(seq_len)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--formats", default="none,fp8,nvfp4,fp8_block,int4")
    ap.add_argument("--max-shard-size", default="60KB")
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--extra", default="", help="more quantize flags for every export")
    ap.add_argument("--layouts", default="",
                    help="comma-separated subset of " + ",".join(n for n, _, _ in LAYOUTS))
    args = ap.parse_args()
    layouts = [l for l in LAYOUTS if not args.layouts or l[0] in args.layouts.split(",")]
    extra_flags = shlex.split(args.extra)
    all_linear = "all-linear" in extra_flags
    kv_cache = "--kv-cache" in extra_flags
    mpiexec = shlex.split(args.mpiexec)
    here = os.path.dirname(os.path.abspath(__file__))
    checker = os.path.join(here, "formats_reference.py")
    failures = []
    checked = 0
    stats = {"identical": 0, "within": 0}
    work = tempfile.mkdtemp(prefix="moequant-layouts-")
    try:
        for model in args.model:
            for fmt in args.formats.split(","):
                common = ["quantize", "--model", model, "--format", fmt, "-q", "--no-table",
                          "--max-shard-size", args.max_shard_size]
                if fmt == "fp8_block":  # small test experts: partial 128-blocks, on purpose
                    common.append("--allow-partial-blocks")
                if args.calibrate:
                    common += write_calibration_ids(model, os.path.join(work, "calib.jsonl"))
                common += extra_flags
                ref = os.path.join(work, "ref")
                shutil.rmtree(ref, ignore_errors=True)
                if not run([args.tool] + common + ["--out", ref]):
                    failures.append(f"{model} {fmt}: single-rank export failed")
                    continue
                extra = (["--allow-input-scale"] if args.calibrate else []) + (
                    ["--all-linear"] if all_linear else [])
                # The independent checker reads bf16 sources (an FP8 block source is checked
                # against its bf16 conversion by fp8_source_test.py).
                with open(os.path.join(model, "config.json")) as f:
                    plain_source = "quantization_config" not in json.load(f)
                gptq = "gptq" in extra_flags  # codes are GPTQ's, not the formulas' round to nearest
                if plain_source and not kv_cache and not gptq and os.path.exists(checker) and not run(
                        [sys.executable, checker, "--source", model, "--quantized", ref,
                         "--format", fmt] + extra):
                    failures.append(f"{model} {fmt}: differs from docs/formats.md (formats_reference)")
                if args.calibrate and not run(
                        [sys.executable, os.path.join(here, "engine_schema.py"), "--source", model,
                         "--quantized", ref, "--format", fmt, "--calibrated"] +
                        (["--all-linear"] if all_linear else []) +
                        (["--kv-cache"] if kv_cache else [])):
                    failures.append(f"{model} {fmt}: misread by engines (engine_schema)")
                for name, np_, flags in layouts:
                    out = os.path.join(work, name)
                    shutil.rmtree(out, ignore_errors=True)
                    cmd = mpiexec + ["-np", str(np_), args.tool] + common + flags + ["--out", out]
                    if not run(cmd):
                        failures.append(f"{model} {fmt} {name}: export failed")
                        continue
                    diff = same_calibrated(ref, out, stats) if args.calibrate else \
                        same_folder(ref, out)
                    checked += 1
                    if diff:
                        failures.append(f"{model} {fmt} {name}: {diff}")
                print(f"{os.path.basename(model)} {fmt}: {len(layouts)} layouts compared", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    if args.calibrate:
        print(f"input scales across layouts: {stats['identical']} bit-identical, "
              f"{stats['within']} within 2^-20")
    print(f"{checked + 1 - len(failures) if checked else 0} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
