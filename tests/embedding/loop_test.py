#!/usr/bin/env python3
"""Drives examples/megatron_style_loop under mpirun (tests/embedding/CMakeLists.txt).

Cases:
  train_<layout>      4 ranks train, calibrate and export: the loss decreases and follows the
                      1-rank run's curve (gradients flow through the EP/ETP dispatch), the expert
                      the router avoids is reported as uncalibrated, the export is complete.
  identical_<layout>  one MoE layer, seeded weights, no training step: the 4-rank export is
                      byte-identical to the 1-rank export (inputs calibrated under EP/ETP).
Every export is also read the way serving engines read it (tests/export/engine_schema.py): the
calibrated runs write ModelOpt FP8 / NVFP4 with an input_scale beside every quantized weight.
Standard library only.
"""
import argparse
import filecmp
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

LAYOUTS = {"ep2_etp2": ["--ep", "2", "--etp", "2"], "ep4": ["--ep", "4"]}
RANKS = 4
AVOIDED = 5  # the expert the router never picks in the training cases
STEPS = 12


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=150)
    if p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout}")
    return p.stdout


def loop(args, extra, ranks):
    cmd = [args.bin] + extra
    if ranks > 1:
        cmd = shlex.split(args.mpiexec) + ["-np", str(ranks)] + cmd
    return run(cmd)


def losses(output):
    return [float(m.group(2)) for m in re.finditer(r"^step (\d+) loss ([0-9.eE+-]+)$", output, re.M)]


def check(cond, msg):
    if not cond:
        sys.exit("FAILED: " + msg)


def check_engine_schema(folder, fmt):
    schema = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "export",
                          "engine_schema.py")
    print(run([sys.executable, schema, "--quantized", folder, "--format", fmt, "--calibrated"])
          .strip())


def check_export(folder, layers, experts, per_proj):
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        names = set(json.load(f)["weight_map"])
    check(len(names) == layers * experts * 3 * per_proj,
          f"{folder}: {len(names)} tensors, expected {layers * experts * 3 * per_proj}")
    for layer in range(layers):
        for e in range(experts):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                base = f"model.layers.{layer}.mlp.experts.{e}.{proj}."
                for suffix in ("weight", "weight_scale", "input_scale"):
                    check(base + suffix in names, f"{folder}: {base + suffix} missing")
    with open(os.path.join(folder, "config.json")) as f:
        check(json.load(f)["quantization_config"]["quant_algo"] == "FP8", "config.json: not FP8")


def case_train(args, layout, tmp):
    common = ["--steps", str(STEPS), "--format", "fp8", "--avoid-expert", str(AVOIDED)]
    out = loop(args, common + LAYOUTS[layout] + ["--out", os.path.join(tmp, "multi")], RANKS)
    print(out)
    curve = losses(out)
    check(len(curve) == STEPS, f"expected {STEPS} loss lines, got {len(curve)}")
    check(curve[-1] < 0.8 * curve[0], f"loss did not decrease: {curve[0]} -> {curve[-1]}")
    reference = losses(loop(args, common + ["--out", os.path.join(tmp, "single")], 1))
    for step, (a, b) in enumerate(zip(curve, reference), 1):
        check(abs(a - b) <= 1e-4 * max(1.0, abs(b)),
              f"step {step}: loss {a} on {RANKS} ranks, {b} on one rank")
    warning = (f"warning: calibration routed no tokens to 2 expert(s): layer 0 expert {AVOIDED}, "
               f"layer 1 expert {AVOIDED} ")
    check(warning in out, f"missing uncalibrated-expert warning '{warning}'")
    check_export(os.path.join(tmp, "multi"), layers=2, experts=8, per_proj=3)
    check_engine_schema(os.path.join(tmp, "multi"), "fp8")
    print(f"loss {curve[0]:.6f} -> {curve[-1]:.6f} over {STEPS} steps, equal to one rank's curve")


def case_identical(args, layout, tmp):
    # fp8 on one layout, nvfp4 on the other: both formats' input and weight scales covered.
    fmt = "fp8" if layout == "ep2_etp2" else "nvfp4"
    common = ["--skip-train", "--layers", "1", "--calib-batches", "3", "--format", fmt]
    single, multi = os.path.join(tmp, "single"), os.path.join(tmp, "multi")
    loop(args, common + ["--out", single], 1)
    loop(args, common + LAYOUTS[layout] + ["--out", multi], RANKS)
    files = sorted(os.listdir(single))
    check(files == sorted(os.listdir(multi)), f"file sets differ: {files} vs {sorted(os.listdir(multi))}")
    for name in files:
        check(filecmp.cmp(os.path.join(single, name), os.path.join(multi, name), shallow=False),
              f"{name} differs between 1 rank and {RANKS} ranks ({layout})")
    print(f"{fmt}: {len(files)} files byte-identical between 1 rank and {RANKS} ranks ({layout})")
    check_engine_schema(multi, fmt)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("case", help="train_<layout> or identical_<layout>")
    args = ap.parse_args()
    kind, _, layout = args.case.partition("_")
    check(layout in LAYOUTS and kind in ("train", "identical"), f"unknown case {args.case}")
    with tempfile.TemporaryDirectory(prefix="moequant-loop-") as tmp:
        (case_train if kind == "train" else case_identical)(args, layout, tmp)
    print("PASSED")


if __name__ == "__main__":
    main()
