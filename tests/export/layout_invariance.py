#!/usr/bin/env python3
"""Layout invariance of the exporter, through the tool as a user runs it.

For each model and format, the export of a single rank is the reference; the same export under
mpirun with every layout (TP2, EP2, EP4, TP2xEP2, ETP2xEP2, EP2xPP2) must produce the same
folder: the same files with the same bytes (tensors, index, config.json, hf_quant_config.json).
When tests/export/formats_reference.py is present, the reference export is also checked
bit-exactly against FORMATS.md recomputed from the source weights by that independent checker.

usage: layout_invariance.py --tool BIN --mpiexec "mpiexec --oversubscribe ..." --model DIR
                            [--model DIR ...] [--formats fp8,nvfp4,...]
"""
import argparse
import filecmp
import os
import shlex
import shutil
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--formats", default="none,fp8,nvfp4,fp8_block,int4")
    ap.add_argument("--max-shard-size", default="60KB")
    args = ap.parse_args()
    mpiexec = shlex.split(args.mpiexec)
    checker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "formats_reference.py")
    failures = []
    checked = 0
    work = tempfile.mkdtemp(prefix="moequant-layouts-")
    try:
        for model in args.model:
            for fmt in args.formats.split(","):
                common = ["quantize", "--model", model, "--format", fmt, "-q", "--no-table",
                          "--max-shard-size", args.max_shard_size]
                ref = os.path.join(work, "ref")
                shutil.rmtree(ref, ignore_errors=True)
                if not run([args.tool] + common + ["--out", ref]):
                    failures.append(f"{model} {fmt}: single-rank export failed")
                    continue
                if os.path.exists(checker) and not run(
                        [sys.executable, checker, "--source", model, "--quantized", ref,
                         "--format", fmt]):
                    failures.append(f"{model} {fmt}: differs from FORMATS.md (formats_reference)")
                for name, np_, flags in LAYOUTS:
                    out = os.path.join(work, name)
                    shutil.rmtree(out, ignore_errors=True)
                    cmd = mpiexec + ["-np", str(np_), args.tool] + common + flags + ["--out", out]
                    if not run(cmd):
                        failures.append(f"{model} {fmt} {name}: export failed")
                        continue
                    diff = same_folder(ref, out)
                    checked += 1
                    if diff:
                        failures.append(f"{model} {fmt} {name}: {diff}")
                print(f"{os.path.basename(model)} {fmt}: {len(LAYOUTS)} layouts compared", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    print(f"{checked + 1 - len(failures) if checked else 0} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
