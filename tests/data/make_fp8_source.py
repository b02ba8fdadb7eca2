#!/usr/bin/env python3
"""Writes an FP8 copy of a bf16 Hugging Face checkpoint in DeepSeek-V3's release format, and the
bf16 conversion of that copy, each with its own rules (Python standard library only; nothing of
moequant).

The FP8 copy: every linear weight of the decoder layers (attention, experts, shared experts, dense
MLPs) as F8_E4M3 with an F32 `<name>_scale_inv` of shape [ceil(out/128), ceil(in/128)]:
    s = amax(|w| over the 128x128 block) / 448 (1.0 for an all-zero block), in float32
    code = e4m3(float32(w / s)): round to nearest even, saturating at 448
(DeepSeek's own weight_quant rule); embeddings, norms, the router (mlp.gate) and lm_head stay
bf16; config.json gains DeepSeek's quantization_config.

The bf16 conversion of the FP8 copy (what DeepSeek's fp8_cast_bf16.py writes): every FP8 weight
as bf16(float32(e4m3 value) * s), rounded to nearest even; the scales dropped; no
quantization_config.

Usage: make_fp8_source.py --source DIR --fp8-out DIR [--bf16-out DIR]
"""

import argparse
import json
import math
import os
import struct
import sys

BLOCK = 128


def f32(x):
    """x rounded to float32 (round to nearest even)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bf16_to_float(h):
    return struct.unpack("<f", struct.pack("<I", h << 16))[0]


def float_to_bf16(x):
    u = struct.unpack("<I", struct.pack("<f", x))[0]
    if (u & 0x7FFFFFFF) > 0x7F800000:
        return 0x7FC0
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF


def e4m3_to_float(c):
    sign = -1.0 if c & 0x80 else 1.0
    exp, man = (c >> 3) & 0xF, c & 0x7
    if exp == 0xF and man == 0x7:
        return math.nan
    if exp == 0:
        return sign * man * 2.0 ** -9
    return sign * (1 + man / 8.0) * 2.0 ** (exp - 7)


def round_half_even(x):
    f = math.floor(x)
    d = x - f
    if d > 0.5 or (d == 0.5 and f % 2 == 1):
        return f + 1
    return f


def float_to_e4m3(x):
    sign = 0x80 if (x < 0 or (x == 0 and math.copysign(1.0, x) < 0)) else 0
    a = abs(x)
    if a >= 448.0:
        return sign | 0x7E
    if a < 2.0 ** -6:  # subnormal: k * 2^-9
        k = int(round_half_even(a / 2.0 ** -9))
        return sign | k  # k == 8 is the smallest normal, 0x08
    e = math.floor(math.log2(a))
    if 2.0 ** e > a:  # guard log2 rounding
        e -= 1
    m = int(round_half_even((a / 2.0 ** e - 1) * 8))
    if m == 8:
        m, e = 0, e + 1
    if e > 8:
        return sign | 0x7E
    return sign | ((e + 7) << 3) | m


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    data = blob[8 + n:]
    tensors = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        tensors[name] = (info["dtype"], list(info["shape"]), bytes(data[b:e]))
    return tensors, meta


def write_safetensors(path, tensors, meta=None):
    header = {}
    if meta:
        header["__metadata__"] = meta
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, data in tensors.values():
            f.write(data)


def is_quantized_linear(name, dtype, shape):
    """A decoder linear of DeepSeek's release: 2-D, in a layer, not the router."""
    return (dtype == "BF16" and len(shape) == 2 and name.startswith("model.layers.")
            and name.endswith(".weight") and not name.endswith(".mlp.gate.weight")
            and not name.endswith("embed_tokens.weight") and not name.endswith("shared_head.head.weight"))


def to_fp8_blocks(shape, data):
    rows, cols = shape
    w = [bf16_to_float(h) for h in struct.unpack(f"<{rows * cols}H", data)]
    tr, tc = (rows + BLOCK - 1) // BLOCK, (cols + BLOCK - 1) // BLOCK
    scales = [1.0] * (tr * tc)
    for bi in range(tr):
        for bj in range(tc):
            amax = 0.0
            for r in range(bi * BLOCK, min(rows, (bi + 1) * BLOCK)):
                for c in range(bj * BLOCK, min(cols, (bj + 1) * BLOCK)):
                    amax = max(amax, abs(w[r * cols + c]))
            scales[bi * tc + bj] = f32(amax / 448.0) if amax > 0 else 1.0
    codes = bytearray(rows * cols)
    for r in range(rows):
        for c in range(cols):
            s = scales[(r // BLOCK) * tc + c // BLOCK]
            codes[r * cols + c] = float_to_e4m3(f32(w[r * cols + c] / s))
    return bytes(codes), [tr, tc], struct.pack(f"<{tr * tc}f", *scales)


def from_fp8_blocks(shape, codes, scale_shape, scale_bytes):
    rows, cols = shape
    tc = scale_shape[1]
    scales = struct.unpack(f"<{scale_shape[0] * tc}f", scale_bytes)
    out = [0] * (rows * cols)
    for r in range(rows):
        for c in range(cols):
            v = f32(e4m3_to_float(codes[r * cols + c]) * scales[(r // BLOCK) * tc + c // BLOCK])
            out[r * cols + c] = float_to_bf16(v)
    return struct.pack(f"<{rows * cols}H", *out)


def shard_files(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--fp8-out", required=True)
    ap.add_argument("--bf16-out")
    a = ap.parse_args()
    with open(os.path.join(a.source, "config.json")) as f:
        config = json.load(f)
    os.makedirs(a.fp8_out)
    if a.bf16_out:
        os.makedirs(a.bf16_out)
    for shard in shard_files(a.source):
        tensors, meta = read_safetensors(os.path.join(a.source, shard))
        fp8, bf16 = {}, {}
        for name, (dtype, shape, data) in tensors.items():
            if not is_quantized_linear(name, dtype, shape):
                fp8[name] = bf16[name] = (dtype, shape, data)
                continue
            codes, scale_shape, scale_bytes = to_fp8_blocks(shape, data)
            fp8[name] = ("F8_E4M3", shape, codes)
            fp8[name + "_scale_inv"] = ("F32", scale_shape, scale_bytes)
            bf16[name] = ("BF16", shape, from_fp8_blocks(shape, codes, scale_shape, scale_bytes))
        write_safetensors(os.path.join(a.fp8_out, shard), fp8, meta)
        if a.bf16_out:
            write_safetensors(os.path.join(a.bf16_out, shard), bf16, meta)
    if len(shard_files(a.source)) > 1:
        for out in [a.fp8_out] + ([a.bf16_out] if a.bf16_out else []):
            index = {}
            total = 0
            for shard in shard_files(out):
                for name, (_, _, d) in read_safetensors(os.path.join(out, shard))[0].items():
                    index[name] = shard
                    total += len(d)
            with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {"total_size": total}, "weight_map": index}, f, indent=2)
    fp8_config = dict(config)
    fp8_config["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3",
                                         "activation_scheme": "dynamic",
                                         "weight_block_size": [BLOCK, BLOCK]}
    with open(os.path.join(a.fp8_out, "config.json"), "w") as f:
        json.dump(fp8_config, f, indent=2)
    if a.bf16_out:
        with open(os.path.join(a.bf16_out, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
