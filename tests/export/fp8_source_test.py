#!/usr/bin/env python3
"""Quantizing an FP8 block source (DeepSeek-V3's release format) gives, byte for byte, the
checkpoint that quantizing its bf16 conversion gives: for every format, weights only and calibrated.

The FP8 copy and its bf16 conversion are written by tests/data/make_fp8_source.py with its own
rules (nothing of moequant). Also: the export of the FP8 source passes `verify` against it, no
trace of the source's quantization_config reaches the export, and bad FP8 sources (a weight
without its scales, scales of the wrong shape, non-finite or non-positive scales, another
quant_method) fail with a named error, a non-zero exit and no output. Python standard library only.

Usage: fp8_source_test.py --tool BIN --model FOLDER [--generate "ARGS"] [--formats a,b]
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
MAKE_FP8 = os.path.join(HERE, "..", "data", "make_fp8_source.py")


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
    meta = header.pop("__metadata__", None)
    data = blob[8 + n:]
    return {k: (v["dtype"], v["shape"], bytearray(data[v["data_offsets"][0]:v["data_offsets"][1]]))
            for k, v in header.items()}, meta


def write_safetensors(path, tensors, meta):
    header = {"__metadata__": meta} if meta else {}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, _, d in tensors.values():
            f.write(d)


def bad_source(tool, fp8, tmp, name, edit, needles):
    """A copy of the FP8 source edited by `edit(tensors, config)` must fail, naming `needles`."""
    bad = os.path.join(tmp, "bad-" + name)
    subprocess.run(["cp", "-r", fp8, bad], check=True)
    shard = os.path.join(bad, "model.safetensors")
    tensors, meta = read_safetensors(shard)
    with open(os.path.join(bad, "config.json")) as f:
        config = json.load(f)
    edit(tensors, config)
    write_safetensors(shard, tensors, meta)
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
    ap.add_argument("--model", help="a bf16 checkpoint to make the FP8 source from")
    ap.add_argument("--generate", help="moequant generate arguments for the bf16 checkpoint")
    ap.add_argument("--formats", default="fp8,nvfp4,fp8_block,int4")
    ap.add_argument("--bad-inputs", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="moequant-fp8src-") as tmp:
        model = a.model
        if a.generate:
            model = os.path.join(tmp, "bf16-model")
            run([a.tool, "generate", "--out", model] + shlex.split(a.generate))
        fp8, bf16 = os.path.join(tmp, "fp8"), os.path.join(tmp, "bf16")
        run([sys.executable, MAKE_FP8, "--source", model, "--fp8-out", fp8, "--bf16-out", bf16])
        for fmt in a.formats.split(","):
            extra = ["--allow-partial-blocks"] if fmt == "fp8_block" else []
            for calib in ([], ["--calib-data", "random", "--calib-samples", "4",
                               "--calib-seq-len", "16"]):
                outs = []
                for src in (fp8, bf16):
                    out = os.path.join(tmp, f"{os.path.basename(src)}-{fmt}-{len(calib)}")
                    run([a.tool, "quantize", "--model", src, "--format", fmt, "--out", out, "-q",
                         "--no-table"] + extra + calib)
                    outs.append(out)
                diff = same_folders(*outs)
                if diff:
                    sys.exit(f"FAILED {fmt} {'calibrated' if calib else 'weights only'}: the export "
                             f"of the FP8 source and of its bf16 conversion differ: {diff}")
                with open(os.path.join(outs[0], "config.json")) as f:
                    q = json.load(f).get("quantization_config", {})
                if q.get("quant_method") == "fp8" and "fmt" in q:
                    sys.exit(f"FAILED {fmt}: the source's quantization_config leaked: {q}")
                run([a.tool, "verify", "--source", fp8, "--quantized", outs[0], "-q"])
                print(f"ok: {fmt} {'calibrated' if calib else 'weights only'}: identical bytes, "
                      f"verify passes against the FP8 source")
        if a.bad_inputs:
            first = next(n for n, (d, _, _) in read_safetensors(os.path.join(fp8, "model.safetensors"))[0].items()
                         if d == "F8_E4M3")
            scale = first + "_scale_inv"

            def drop_scale(t, c):
                del t[scale]

            def wrong_shape(t, c):
                d, s, b = t[scale]
                t[scale] = (d, [s[0], s[1] + 1], b + b[:4 * s[0]])

            def set_scale(value):
                def edit(t, c):
                    d, s, b = t[scale]
                    b[0:4] = struct.pack("<f", value)
                return edit

            def other_method(t, c):
                c["quantization_config"] = {"quant_method": "gptq", "bits": 4}

            bad_source(a.tool, fp8, tmp, "missing-scale", drop_scale, [first, "_scale_inv"])
            bad_source(a.tool, fp8, tmp, "scale-shape", wrong_shape, [scale, "[1, 2]"])
            bad_source(a.tool, fp8, tmp, "scale-nan", set_scale(float("nan")), [scale, "nan"])
            bad_source(a.tool, fp8, tmp, "scale-inf", set_scale(float("inf")), [scale, "inf"])
            bad_source(a.tool, fp8, tmp, "scale-zero", set_scale(0.0), [scale, "finite and positive"])
            bad_source(a.tool, fp8, tmp, "scale-negative", set_scale(-1.0), [scale, "-1"])
            bad_source(a.tool, fp8, tmp, "quant-method", other_method,
                       ["config.json", "quant_method 'gptq'"])
    print("fp8 source: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
