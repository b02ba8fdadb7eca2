#!/usr/bin/env python3
"""Quantizing an MXFP4 source (GPT-OSS's release layout) gives, byte for byte, the checkpoint
that quantizing the bf16 it encodes gives, for every format, weights only and calibrated with
data (the forward reads the dequantized experts).

The MXFP4 copy and its bf16 equivalent are written by tests/data/make_mxfp4_source.py with its
own rules (nothing of moequant), subnormal bf16 values included. Also: the export of the MXFP4
source passes `verify` against it, the source's quantization_config does not reach the export,
and bad MXFP4 sources (blocks and scales of shapes that disagree, the wrong expert count, a scale
byte 255, blocks without an mxfp4 quantization_config, scales missing) fail with one named error,
a non-zero exit and no output. Python standard library only.

Usage: mxfp4_source_test.py --tool BIN --model GPT_OSS_BF16_FOLDER [--formats a,b]
"""

import argparse
import filecmp
import json
import os
import shlex
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_MXFP4 = os.path.join(HERE, "..", "data", "make_mxfp4_source.py")


def run(cmd, expect_ok=True):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(shlex.quote, cmd))}\n{proc.stdout}\n{proc.stderr}")
    return proc


def same_folders(a, b):
    names = sorted(os.listdir(a))
    if names != sorted(os.listdir(b)):
        return f"files differ: {names} vs {sorted(os.listdir(b))}"
    for n in names:
        if not filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False):
            return f"{n} differs"
    return ""


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n:]
    return {k: (v["dtype"], v["shape"], bytearray(data[v["data_offsets"][0]:v["data_offsets"][1]]))
            for k, v in header.items()}


def write_safetensors(path, tensors):
    header, offset = {}, 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, _, d in tensors.values():
            f.write(d)


def bad_source(tool, src, tmp, name, edit, needles):
    """A copy of the MXFP4 source edited by `edit(tensors, config)` must fail, naming `needles`."""
    bad = os.path.join(tmp, "bad-" + name)
    subprocess.run(["cp", "-r", src, bad], check=True)
    shard = os.path.join(bad, "model.safetensors")
    tensors = read_safetensors(shard)
    with open(os.path.join(bad, "config.json")) as f:
        config = json.load(f)
    edit(tensors, config)
    write_safetensors(shard, tensors)
    with open(os.path.join(bad, "config.json"), "w") as f:
        json.dump(config, f)
    out = os.path.join(tmp, "out-" + name)
    proc = run([tool, "quantize", "--model", bad, "--format", "nvfp4", "--out", out, "-q"],
               expect_ok=False)
    errors = [l for l in proc.stderr.splitlines() if l.startswith("moequant: ")]
    if proc.returncode == 0 or proc.returncode < 0 or len(errors) != 1:
        sys.exit(f"FAILED {name}: exit {proc.returncode}, stderr {proc.stderr!r}")
    for n in needles:
        if n not in errors[0]:
            sys.exit(f"FAILED {name}: the error does not name {n!r}: {errors[0]!r}")
    for leftover in (out, out + ".moequant-partial"):
        if os.path.exists(leftover):
            sys.exit(f"FAILED {name}: a failed run left {leftover}")
    print(f"ok: {name}: {errors[0]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--model", required=True, help="the bf16 GPT-OSS checkpoint")
    ap.add_argument("--formats", default="fp8,nvfp4,fp8_block,int4")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="moequant-mxfp4src-") as tmp:
        mx, bf16 = os.path.join(tmp, "mxfp4"), os.path.join(tmp, "bf16")
        run([sys.executable, MAKE_MXFP4, "--source", a.model, "--mxfp4-out", mx, "--bf16-out", bf16])
        for fmt in a.formats.split(","):
            extra = ["--allow-partial-blocks"] if fmt == "fp8_block" else []
            for calib in ([], ["--calib-data", "random", "--calib-samples", "4",
                               "--calib-seq-len", "16"]):
                outs = []
                for src in (mx, bf16):
                    out = os.path.join(tmp, f"{os.path.basename(src)}-{fmt}-{len(calib)}")
                    run([a.tool, "quantize", "--model", src, "--format", fmt, "--out", out, "-q",
                         "--no-table"] + extra + calib)
                    outs.append(out)
                what = "calibrated" if calib else "weights only"
                diff = same_folders(*outs)
                if diff:
                    sys.exit(f"FAILED {fmt} {what}: the export of the MXFP4 source and of the bf16 "
                             f"it encodes differ: {diff}")
                with open(os.path.join(outs[0], "config.json")) as f:
                    q = json.load(f).get("quantization_config", {})
                if q.get("quant_method") == "mxfp4":
                    sys.exit(f"FAILED {fmt}: the source's quantization_config leaked: {q}")
                run([a.tool, "verify", "--source", mx, "--quantized", outs[0], "-q"])
                print(f"ok: {fmt} {what}: identical bytes, verify passes against the MXFP4 source")
        proc = run([a.tool, "inspect", mx])
        if "engine view" not in proc.stdout or "mxfp4" not in proc.stdout:
            sys.exit(f"FAILED: inspect of the MXFP4 source does not name it:\n{proc.stdout}")
        print("ok: inspect reads the MXFP4 source")
        blocks = "model.layers.1.mlp.experts.gate_up_proj_blocks"
        scales = "model.layers.1.mlp.experts.gate_up_proj_scales"

        def scales_shape(t, c):  # one row of scales fewer than the blocks have
            d, s, b = t[scales]
            t[scales] = (d, [s[0], s[1] - 1, s[2]], b[: s[0] * (s[1] - 1) * s[2]])

        def expert_count(t, c):  # blocks and scales of one expert fewer
            for n in (blocks, scales):
                d, s, b = t[n]
                t[n] = (d, [s[0] - 1] + s[1:], b[: len(b) // s[0] * (s[0] - 1)])

        def nan_scale(t, c):
            t[scales][2][5] = 255

        def no_config(t, c):
            del c["quantization_config"]

        def missing_scales(t, c):
            del t[scales]

        bad_source(a.tool, mx, tmp, "scales-shape", scales_shape, [scales, blocks, "need U8 [4, 64, 2]"])
        bad_source(a.tool, mx, tmp, "expert-count", expert_count, [blocks, "holds 3 experts",
                                                                   "config.json has 4"])
        bad_source(a.tool, mx, tmp, "scale-nan", nan_scale, [blocks, "scale 5 is 255"])
        bad_source(a.tool, mx, tmp, "no-quantization-config", no_config,
                   ["holds MXFP4 blocks but config.json declares no mxfp4 quantization_config"])
        bad_source(a.tool, mx, tmp, "missing-scales", missing_scales, [scales, "is missing"])
    print("mxfp4 source: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
