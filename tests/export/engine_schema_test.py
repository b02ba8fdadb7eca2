#!/usr/bin/env python3
"""Every export of one model, read the way serving engines read it (engine_schema.py).

Usage: engine_schema_test.py --tool BIN --model DIR [--calib-data FILE|random]

For each format (fp8, nvfp4, fp8_block, int4): a plain export, one with the experts of the last
MoE layer excluded (every format; int4 also with single experts left out), and, with
--calib-data, a calibrated export (static activation scales): each passes engine_schema.py. An
--exclude that leaves a layer partly quantized is refused for every format but int4, with a clear
error and no output folder.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


# The fixtures' experts (intermediate 32) are not whole 128-blocks: written on purpose.
PARTIAL = {"fp8_block": ["--allow-partial-blocks"]}


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--calib-data")
    args = ap.parse_args()
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    text = cfg.get("text_config") or cfg  # a multimodal wrapper nests the text model's keys
    block = {"mixtral": "block_sparse_moe", "llama4_text": "feed_forward"}.get(cfg["model_type"],
                                                                             "mlp")
    root = "model.language_model." if "text_config" in cfg else "model."
    dense = set(text.get("mlp_only_layers") or [])
    moe = text.get("moe_layers") or range(text["num_hidden_layers"])
    last_moe = max(l for l in moe if l not in dense)
    whole_layer = "%slayers.%d.%s.experts.*" % (root, last_moe, block)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="mq-engine-schema-") as tmp:
        cases = []
        for fmt in ("fp8", "nvfp4", "fp8_block", "int4"):
            cases.append((fmt, [], False))
            cases.append((fmt, ["--exclude", whole_layer], False))
            if args.calib_data:
                cases.append((fmt, ["--calib-data", args.calib_data, "--calib-seq-len", "16"],
                              True))
        cases.append(("int4", ["--exclude", r"re:experts\.1\."], False))
        for i, (fmt, extra, calibrated) in enumerate(cases):
            out = os.path.join(tmp, "out%d" % i)
            rc, log = run([args.tool, "quantize", "--model", args.model, "--format", fmt] + PARTIAL.get(fmt, []) + [
                           "--out", out, "-q", "--no-table"] + extra)
            label = "%s %s" % (fmt, " ".join(extra) or "(plain)")
            if rc != 0:
                print("FAILED: quantize %s:\n%s" % (label, log))
                failures += 1
                continue
            cmd = [sys.executable, os.path.join(HERE, "engine_schema.py"), "--source", args.model,
                   "--quantized", out, "--format", fmt] + (["--calibrated"] if calibrated else [])
            rc, log = run(cmd)
            print("%s: %s" % (label, log.strip().splitlines()[-1]))
            if rc != 0:
                print(log)
                failures += 1
            rc, log = run([args.tool, "inspect", out])
            if rc != 0 or "read as stored" not in log:
                print("FAILED: inspect %s (exit %d):\n%s" % (label, rc, log[-2000:]))
                failures += 1
        # A layer partly excluded: refused for every format but int4.
        for fmt in ("fp8", "nvfp4", "fp8_block"):
            out = os.path.join(tmp, "partial-" + fmt)
            rc, log = run([args.tool, "quantize", "--model", args.model, "--format", fmt] + PARTIAL.get(fmt, []) + [
                           "--out", out, "-q", "--exclude", r"re:experts\.1\."])
            if rc == 0 or "fused MoE" not in log or os.path.exists(out):
                print("FAILED: a partly excluded layer was not refused for %s (exit %d):\n%s"
                      % (fmt, rc, log))
                failures += 1
    print("engine_schema_test: %s" % ("FAILED" if failures else "OK"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
