#!/usr/bin/env python3
"""Writes a GPT-OSS checkpoint in the MXFP4 release layout from a bf16 one, and the bf16
checkpoint that MXFP4 copy encodes, each with its own rules (Python standard library only;
nothing of moequant).

The MXFP4 copy (GPT-OSS's release, as transformers' Mxfp4GptOssExperts holds it): each layer's
experts as
    mlp.experts.gate_up_proj_blocks U8 [E, 2I, H/32, 16], gate_up_proj_scales U8 [E, 2I, H/32]
    mlp.experts.down_proj_blocks    U8 [E, H, I/32, 16],  down_proj_scales    U8 [E, H, I/32]
where row o of gate_up is output o of the bf16 fixture's gate_up_proj [E, H, 2I] (gate and up
interleaved, as the fixture has them) and row h of down is output h of down_proj [E, I, H]. Per
block of 32 consecutive inputs of a row: the e8m0 scale s = 127 + floor(log2(amax)) - 2 (127 for an
all-zero block), clamped to [0, 254]; each element the e2m1 code nearest w / 2^(s - 127) (ties to
the even code, magnitudes above 6 saturate, the sign in bit 3, -0 kept as 0x8), two codes a byte,
the even element in the low nibble. A few blocks get extreme scales on purpose (the first block
of every layer's gate_up_proj keeps its codes under s = 0, so its values are bf16 subnormals). The biases, attention,
router, embeddings, norms and lm_head stay bf16; config.json gains
{"quant_method": "mxfp4", "modules_to_not_convert": [...]} as the release has it.

The bf16 checkpoint it encodes: every MXFP4 weight as e2m1 * 2^(s - 127) (exact in bf16), back in
the bf16 fixture's layout; everything else as it was; no quantization_config.

Usage: make_mxfp4_source.py --source DIR --mxfp4-out DIR [--bf16-out DIR]
"""

import argparse
import json
import math
import os
import struct

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
NOT_CONVERTED = ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
                 "lm_head"]


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n:]
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items()}


def write_safetensors(path, tensors):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
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
    return [struct.unpack("<f", b"\0\0" + data[k:k + 2])[0] for k in range(0, len(data), 2)]


def bf16_bytes(values):
    """Exact values only (every MXFP4 value is): the top half of the float32."""
    out = bytearray()
    for v in values:
        b = struct.pack("<f", v)
        if b[:2] != b"\0\0":
            raise ValueError("%r is not a bf16 value" % v)
        out += b[2:]
    return bytes(out)


def e2m1_code(y):
    mag = abs(y)
    best = 0
    for i, v in enumerate(E2M1):  # nearest, ties to the even index
        d, db = abs(mag - v), abs(mag - E2M1[best])
        if d < db or (d == db and i % 2 == 0 and best % 2 == 1):
            best = i
    if mag > 6.0:
        best = 7
    return (8 if math.copysign(1.0, y) < 0 else 0) | best


def block_scale(values):
    amax = max(abs(v) for v in values)
    if amax == 0.0:
        return 127
    return max(0, min(254, 127 + math.floor(math.log2(amax)) - 2))


def encode_rows(rows, forced_scale=None):
    """rows: [R][C] floats -> (blocks bytes [R, C/32, 16], scales bytes [R, C/32], decoded rows)."""
    blocks, scales, decoded = bytearray(), bytearray(), []
    for r, row in enumerate(rows):
        out_row = []
        for b0 in range(0, len(row), 32):
            block = row[b0:b0 + 32]
            s = block_scale(block)
            codes = [e2m1_code(v / 2.0 ** (s - 127)) for v in block]
            if forced_scale is not None and r == 0 and b0 == 0:
                s = forced_scale  # the same codes under an extreme scale
            scale = 2.0 ** (s - 127)
            for k in range(0, 32, 2):
                blocks.append(codes[k] | (codes[k + 1] << 4))
            scales.append(s)
            out_row += [math.copysign(E2M1[c & 7], -1.0 if c & 8 else 1.0) * scale for c in codes]
        decoded.append(out_row)
    return bytes(blocks), bytes(scales), decoded


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--mxfp4-out", required=True)
    ap.add_argument("--bf16-out")
    a = ap.parse_args()
    with open(os.path.join(a.source, "config.json")) as f:
        config = json.load(f)
    tensors = read_safetensors(os.path.join(a.source, "model.safetensors"))
    mx, bf = {}, {}
    for name, (dtype, shape, data) in tensors.items():
        fused = name.endswith(".mlp.experts.gate_up_proj") or name.endswith(".mlp.experts.down_proj")
        if not fused:
            mx[name] = bf[name] = (dtype, shape, data)
            continue
        if dtype != "BF16":
            raise SystemExit("%s: expected BF16, got %s" % (name, dtype))
        E, IN, OUT = shape  # x @ W: [E, in, out]; the MXFP4 rows are the outputs
        vals = bf16_values(data)
        blocks, scales, back = bytearray(), bytearray(), []
        forced = 0 if name.endswith("gate_up_proj") else None
        for e in range(E):
            rows = [[vals[(e * IN + i) * OUT + o] for i in range(IN)] for o in range(OUT)]
            b, s, d = encode_rows(rows, forced if e == 0 else None)
            blocks += b
            scales += s
            back.append(d)
        mx[name + "_blocks"] = ("U8", [E, OUT, IN // 32, 16], bytes(blocks))
        mx[name + "_scales"] = ("U8", [E, OUT, IN // 32], bytes(scales))
        flat = [back[e][o][i] for e in range(E) for i in range(IN) for o in range(OUT)]
        bf[name] = ("BF16", shape, bf16_bytes(flat))
    os.makedirs(a.mxfp4_out, exist_ok=True)
    write_safetensors(os.path.join(a.mxfp4_out, "model.safetensors"), mx)
    mx_config = dict(config)
    mx_config["quantization_config"] = {"quant_method": "mxfp4",
                                        "modules_to_not_convert": NOT_CONVERTED}
    with open(os.path.join(a.mxfp4_out, "config.json"), "w") as f:
        json.dump(mx_config, f, indent=2)
    if a.bf16_out:
        os.makedirs(a.bf16_out, exist_ok=True)
        write_safetensors(os.path.join(a.bf16_out, "model.safetensors"), bf)
        with open(os.path.join(a.bf16_out, "config.json"), "w") as f:
            json.dump(config, f, indent=2)


if __name__ == "__main__":
    main()
