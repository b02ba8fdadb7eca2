#!/usr/bin/env python3
"""Quantizing an MXFP4 source (GPT-OSS's release layout) gives, byte for byte, the checkpoint
that quantizing the bf16 it encodes gives, for fp8, fp8_block and int4, weights only and
calibrated with data (the forward reads the dequantized experts). For nvfp4 the MXFP4 codes are
kept (docs/formats.md, "NVFP4 from an MXFP4 source"): every expert weight of the export
dequantizes exactly to the bf16 the source encodes except in the 16-blocks the tool reports as
re-quantized, which are exactly the source's blocks of bf16 subnormals (make_mxfp4_source.py puts
one 32-block of them in each layer: their scale is out of e4m3's reach); weight_scale_2 is a
power of two; the calibrated export's input scales equal the bf16 source's.

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


def bf16_values(data):
    return [struct.unpack("<f", struct.pack("<I", h << 16))[0]
            for (h,) in struct.iter_unpack("<H", bytes(data))]


def e4m3_value(c):
    s, e, m = -1.0 if c & 0x80 else 1.0, (c >> 3) & 15, c & 7
    return s * (m / 8 * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))


E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def nvfp4_values(t, prefix):
    """Dequantized rows of one exported nvfp4 weight: code * e4m3(block scale) * weight_scale_2."""
    _, (rows, half), packed = t[prefix + ".weight"]
    scales = t[prefix + ".weight_scale"][2]
    (scale2,) = struct.unpack("<f", bytes(t[prefix + ".weight_scale_2"][2]))
    cols = 2 * half
    out = []
    for r in range(rows):
        row = []
        for c in range(cols):
            byte = packed[r * half + c // 2]
            code = byte & 15 if c % 2 == 0 else byte >> 4
            v = E2M1[code & 7] * e4m3_value(scales[r * (cols // 16) + c // 16]) * scale2
            row.append(-v if code & 8 else v)
        out.append(row)
    return out, scale2


def check_nvfp4_keeps_codes(bf16_dir, export_dir, reported):
    """The export's expert weights against the bf16 the MXFP4 source encodes, 16-block by block."""
    src = read_safetensors(os.path.join(bf16_dir, "model.safetensors"))
    out = {}
    for fn in os.listdir(export_dir):
        if fn.endswith(".safetensors"):
            out.update(read_safetensors(os.path.join(export_dir, fn)))
    differ = subnormal = blocks = 0
    for name, (_, shape, data) in src.items():
        if not name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            continue
        E, A, B = shape
        v = bf16_values(data)
        raw = [h for (h,) in struct.iter_unpack("<H", bytes(data))]
        base = name.rsplit(".", 1)[0]
        for e in range(E):
            # [out, in] matrices of expert e: gate_up [H, 2I] -> gate rows = columns 0, 2, ...
            if name.endswith("gate_up_proj"):
                mats = [(f"{base}.{e}.{p}", [[k for k in range(j, B, 2)] for j in (o,)])
                        for o, p in ((0, "gate_proj"), (1, "up_proj"))]
                for prefix, (cols_sel,) in mats:
                    want = [[(v[e * A * B + h * B + c], raw[e * A * B + h * B + c]) for h in range(A)]
                            for c in cols_sel]
                    got, scale2 = nvfp4_values(out, prefix)
                    d, sn, n = compare(want, got, scale2, prefix)
                    differ, subnormal, blocks = differ + d, subnormal + sn, blocks + n
            else:
                prefix = f"{base}.{e}.down_proj"
                want = [[(v[e * A * B + i * B + h], raw[e * A * B + i * B + h]) for i in range(A)]
                        for h in range(B)]
                got, scale2 = nvfp4_values(out, prefix)
                d, sn, n = compare(want, got, scale2, prefix)
                differ, subnormal, blocks = differ + d, subnormal + sn, blocks + n
    if differ != subnormal or reported != (blocks - differ, blocks) or subnormal == 0:
        sys.exit(f"FAILED nvfp4 of the MXFP4 source: {differ} of {blocks} 16-blocks differ from "
                 f"the source, {subnormal} hold bf16 subnormals; the tool reported {reported}")
    return blocks, differ


def compare(want, got, scale2, prefix):
    if scale2 <= 0 or scale2 != 2.0 ** round(__import__("math").log2(scale2)):
        sys.exit(f"FAILED {prefix}: weight_scale_2 {scale2} is not a power of two")
    differ = subnormal = blocks = 0
    for r, row in enumerate(want):
        for b in range(0, len(row), 16):
            blocks += 1
            block = row[b:b + 16]
            sub = any((h & 0x7f80) == 0 and (h & 0x7fff) != 0 for _, h in block)
            same = all(x == y for (x, _), y in zip(block, got[r][b:b + 16]))
            differ += not same
            subnormal += sub
            if sub == same:
                sys.exit(f"FAILED {prefix} row {r} block {b // 16}: "
                         + ("a block of subnormals kept exactly" if sub else "changed by the export"))
    return differ, subnormal, blocks


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
                    report = out + ".json"
                    run([a.tool, "quantize", "--model", src, "--format", fmt, "--out", out, "-q",
                         "--no-table", "--report-json", report] + extra + calib)
                    outs.append(out)
                what = "calibrated" if calib else "weights only"
                if fmt == "nvfp4":
                    with open(outs[0] + ".json") as f:
                        rank = json.load(f)["ranks"][0]
                    kept = (rank["e2m1_blocks"] - rank["e2m1_requantized_blocks"], rank["e2m1_blocks"])
                    blocks, differ = check_nvfp4_keeps_codes(bf16, outs[0], kept)
                    print(f"ok: nvfp4 {what}: {blocks - differ} of {blocks} 16-blocks keep the "
                          f"source's values exactly, the {differ} others are its subnormal blocks")
                    if calib:
                        t = [{}, {}]
                        for k, o in enumerate(outs):
                            for fn in os.listdir(o):
                                if fn.endswith(".safetensors"):
                                    t[k].update(read_safetensors(os.path.join(o, fn)))
                        inputs = [n for n in t[0] if n.endswith("input_scale")]
                        if not inputs or any(t[0][n] != t[1][n] for n in inputs):
                            sys.exit("FAILED nvfp4 calibrated: input scales differ from the bf16 source's")
                else:
                    diff = same_folders(*outs)
                    if diff:
                        sys.exit(f"FAILED {fmt} {what}: the export of the MXFP4 source and of the "
                                 f"bf16 it encodes differ: {diff}")
                with open(os.path.join(outs[0], "config.json")) as f:
                    q = json.load(f).get("quantization_config", {})
                if q.get("quant_method") == "mxfp4":
                    sys.exit(f"FAILED {fmt}: the source's quantization_config leaked: {q}")
                run([a.tool, "verify", "--source", mx, "--quantized", outs[0], "-q"])
                print(f"ok: {fmt} {what}: verify passes against the MXFP4 source")
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
