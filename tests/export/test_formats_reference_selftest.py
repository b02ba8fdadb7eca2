#!/usr/bin/env python3
"""Self-test of formats_reference.py: hand-made checkpoints it must accept and corrupted ones it
must reject. Standard library only. Run: python3 tests/export/test_formats_reference_selftest.py

The correct fp8 example is computed here without the checker's code: every expert weight is an
integer k (|k| <= 15, or 448 for the amax elements) times a power of two, and the per-layer shared
amax is 448 times that power of two, so weight_scale is the power of two and every quotient is
the integer k, whose e4m3 code is written out from the bit layout directly.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "formats_reference.py")
sys.path.insert(0, HERE)
import formats_reference as fr  # noqa: E402  (only for the numeric unit checks)

H, I, E = 16, 8, 2          # hidden, expert intermediate, experts
FC1_POW = 2.0 ** -6         # fc1 scale: amax = 448 * 2^-6 = 7.0
FC2_POW = 2.0 ** -8         # fc2 scale: amax = 448 * 2^-8 = 1.75

failures = []


# ---------------------------------------------------------------- tiny independent helpers

def bf16_bytes(values):
    out = bytearray()
    for v in values:
        bits = struct.unpack("<I", struct.pack("<f", v))[0]
        assert bits & 0xFFFF == 0, "test values must be exact in bf16: %r" % v
        out += struct.pack("<H", bits >> 16)
    return bytes(out)


def e4m3_of_int(k):
    """Exact e4m3 code of an integer k with |k| <= 15 or 448 (written from the bit layout)."""
    sign = 0x80 if k < 0 else 0
    k = abs(k)
    if k == 0:
        return sign
    exp = k.bit_length() - 1              # k = 2^exp * (1 + m/8)
    m = (k - (1 << exp)) * 8 >> exp
    assert (1 << exp) + (m << exp) // 8 == k, k
    return sign | ((exp + 7) << 3) | m


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, bytes); data in header order."""
    header, off = {}, 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for t in tensors:
            f.write(t[3])


def write_folder(path, config, tensors, index=True):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if not index:
        write_safetensors(os.path.join(path, "model.safetensors"), tensors)
        return
    # two shards, to exercise the index
    half = len(tensors) // 2
    shards = [tensors[:half], tensors[half:]]
    wm, total = {}, 0
    for i, sh in enumerate(shards):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        write_safetensors(os.path.join(path, fn), sh)
        for t in sh:
            wm[t[0]] = fn
            total += len(t[3])
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f)


# ---------------------------------------------------------------- the model

def expert_ints(e, kind):
    """Integer multipliers of one expert weight (row-major), deterministic."""
    rows, cols = (H, I) if kind == "down" else (I, H)
    seed = {"gate": 1, "up": 2, "down": 3}[kind] * 7 + e * 3
    vals = [((seed + 5 * r + 3 * c) % 31) - 15 for r in range(rows) for c in range(cols)]
    if e == 1:  # expert 1 is smaller: its own (per-expert) amax differs from the layer's
        vals = [v // 2 for v in vals]
    if e == 0 and kind == "gate":
        vals[5] = 448      # the fc1 amax element: 448 * 2^-6 = 7.0
        vals[6] = -448
    if e == 0 and kind == "down":
        vals[17] = -448    # the fc2 amax element: 448 * 2^-8 = 1.75
    return rows, cols, vals


NAMES = {
    "qwen3_moe": ("model.layers.0.mlp.experts", {"gate": "gate_proj", "up": "up_proj",
                                                   "down": "down_proj"}, "model.layers.0.mlp.gate"),
    "mixtral": ("model.layers.0.block_sparse_moe.experts", {"gate": "w1", "up": "w3", "down": "w2"},
                "model.layers.0.block_sparse_moe.gate"),
}


def config_for(model_type):
    c = {"model_type": model_type, "num_hidden_layers": 1, "hidden_size": H,
         "vocab_size": 4, "torch_dtype": "bfloat16"}
    if model_type == "qwen3_moe":
        c.update(num_experts=E, moe_intermediate_size=I)
    else:
        c.update(num_local_experts=E, intermediate_size=I)
    return c


def passthrough():
    emb = bf16_bytes([(i % 9 - 4) * 0.25 for i in range(4 * H)])
    norm = bf16_bytes([1.0] * H)
    return emb, norm


def source_tensors(model_type, fused=False):
    prefix, proj, router = NAMES[model_type]
    emb, norm = passthrough()
    t = [("model.embed_tokens.weight", "BF16", [4, H], emb),
         ("model.layers.0.input_layernorm.weight", "BF16", [H], norm),
         (router + ".weight", "BF16", [E, H], bf16_bytes([0.5] * (E * H)))]
    if fused:
        gu, dn = b"", b""
        for e in range(E):
            for kind in ("gate", "up"):
                _, _, v = expert_ints(e, kind)
                gu += bf16_bytes([k * FC1_POW for k in v])
            _, _, v = expert_ints(e, "down")
            dn += bf16_bytes([k * FC2_POW for k in v])
        t.append((prefix + ".gate_up_proj", "BF16", [E, 2 * I, H], gu))
        t.append((prefix + ".down_proj", "BF16", [E, H, I], dn))
        return t
    for e in range(E):
        for kind in ("gate", "up", "down"):
            rows, cols, v = expert_ints(e, kind)
            p = FC2_POW if kind == "down" else FC1_POW
            t.append(("%s.%d.%s.weight" % (prefix, e, proj[kind]), "BF16", [rows, cols],
                      bf16_bytes([k * p for k in v])))
    return t


def fp8_output(model_type):
    """The correct fp8 export (shared amax), computed by hand."""
    prefix, proj, router = NAMES[model_type]
    src = [t for t in source_tensors(model_type) if ".experts." not in t[0]]
    t = list(src)
    for e in range(E):
        for kind in ("gate", "up", "down"):
            rows, cols, v = expert_ints(e, kind)
            scale = FC2_POW if kind == "down" else FC1_POW
            base = "%s.%d.%s" % (prefix, e, proj[kind])
            codes = []
            for k in v:
                codes.append(0x7E | (0x80 if k < 0 else 0) if abs(k) == 448 else e4m3_of_int(k))
            t.append((base + ".weight", "F8_E4M3", [rows, cols], bytes(codes)))
            t.append((base + ".weight_scale", "F32", [], struct.pack("<f", scale)))
    cfg = config_for(model_type)
    excl = ["lm_head", "model.embed_tokens", "model.layers.*.self_attn*", router.replace(".0.", ".*.")]
    cfg["quantization_config"] = {"quant_method": "modelopt", "quant_algo": "FP8",
                                  "kv_cache_quant_algo": None, "exclude_modules": excl,
                                  "producer": {"name": "selftest", "version": "0"}}
    hq = {"producer": {"name": "selftest", "version": "0"},
          "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": None, "group_size": None,
                           "exclude_modules": excl}}
    return cfg, hq, t


# ---------------------------------------------------------------- running the checker

def run_checker(src, out, fmt, *extra):
    p = subprocess.run([sys.executable, CHECKER, "--source", src, "--quantized", out,
                        "--format", fmt] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    return p.returncode, p.stdout


def expect(label, rc_wanted, src, out, fmt, *extra, must_say=None):
    rc, text = run_checker(src, out, fmt, *extra)
    ok = rc == rc_wanted and (must_say is None or must_say in text)
    print("%s  %-58s rc=%d (want %d)" % ("ok  " if ok else "FAIL", label, rc, rc_wanted))
    if not ok:
        failures.append(label)
        print("    " + text.replace("\n", "\n    "))


def make_fp8(root, name, model_type="qwen3_moe", mutate=None, hq=True):
    cfg, hqc, tensors = fp8_output(model_type)
    if mutate:
        tensors = mutate(tensors, cfg, hqc)
    path = os.path.join(root, name)
    write_folder(path, cfg, tensors)
    if hq:
        with open(os.path.join(path, "hf_quant_config.json"), "w") as f:
            json.dump(hqc, f)
    return path


def replace_tensor(tensors, name, fn):
    out, hit = [], False
    for t in tensors:
        if t[0] == name:
            t = fn(t)
            hit = True
        if t is not None:
            out.append(t)
    assert hit, name
    return out


def flip_byte(index, mask=0x01):
    def fn(t):
        b = bytearray(t[3])
        b[index] ^= mask
        return (t[0], t[1], t[2], bytes(b))
    return fn


# ---------------------------------------------------------------- numeric unit checks

def unit_checks():
    def check(label, got, want):
        if got != want:
            failures.append(label)
            print("FAIL  %s: got %r, want %r" % (label, got, want))

    e = fr.e4m3_codes
    check("e4m3 exact ints", e([float(k) for k in range(-15, 16)]),
          [e4m3_of_int(k) for k in range(-15, 16)])
    check("e4m3 ties to even", e([17.0, 19.0, 432.0, 2.0 ** -10, 3 * 2.0 ** -10]),
          [e4m3_of_int(16), 0x5A, 0x7E, 0x00, 0x02])   # 19 -> 20 = 1.25*16: (4+7)<<3|2
    check("e4m3 saturate", e([449.0, 464.0, 1e30, -1e30, float("inf")]), [0x7E, 0x7E, 0x7E, 0xFE, 0x7E])
    check("e4m3 signed zero", e([-0.0, -1e-30, 0.0, 1e-30]), [0x80, 0x80, 0x00, 0x00])
    check("e4m3 subnormals", e([2.0 ** -9, 7 * 2.0 ** -9, 2.0 ** -6]), [0x01, 0x07, 0x08])
    check("e2m1 spec ties", fr.e2m1_codes([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0]),
          [0, 2, 2, 4, 4, 6, 6, 7])
    check("e2m1 signs", fr.e2m1_codes([-0.0, -0.1, -6.0, -100.0]), [0x0, 0x8, 0xF, 0xF])
    check("fp16 rne", fr.fp16_bits(1.0 + 2.0 ** -11), 0x3C00)
    check("fp16 rne up", fr.fp16_bits(1.0 + 3 * 2.0 ** -11), 0x3C02)
    check("f32 rne", fr.f32(1.0 + 2.0 ** -24), 1.0)
    check("bf16 decode", fr.decode_floats("BF16", bytes([0x80, 0x3F, 0x00, 0xC0])), [1.0, -2.0])



# ---------------------------------------------------------------- hand-made nvfp4 / int4 / fp8_block
# One qwen3_moe layer, 2 experts, hidden 256, expert intermediate 16: gate/up [16, 256], down
# [256, 16] (fp8_block edge tiles, an int4 group of 16). The weights of each format are built so
# that every scale is exact and every quotient is a chosen value: expected bytes follow from the
# rules of docs/formats.md read by hand (ties included), without the checker's code.

BH, BI = 256, 16
QPREFIX = "model.layers.0.mlp.experts"
QPROJ = (("gate", "gate_proj", BI, BH), ("up", "up_proj", BI, BH), ("down", "down_proj", BH, BI))

# nvfp4: y -> e2m1 code, from the spec's list (0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2,
# 3.5->4, 5->4; the code is the index into {0, .5, 1, 1.5, 2, 3, 4, 6}; sign bit 8 when y < 0)
E2M1_BY_HAND = {0.0: 0, 0.125: 0, 0.25: 0, 0.5: 1, 0.75: 2, 1.0: 2, 1.25: 2, 1.5: 3, 1.75: 4,
                2.0: 4, 2.5: 4, 3.0: 5, 3.5: 6, 4.0: 6, 5.0: 6, 6.0: 7}
NV_PATTERN = [6.0, -0.25, 0.75, -1.25, 1.75, -2.5, 3.5, -5.0, 0.5, -1.0, 1.5, -2.0, 3.0, -4.0,
              -0.0, -0.125]
# the same pattern divided by 4: [1.5, -0.0625, 0.1875, -0.3125, 0.4375, -0.625, 0.875, -1.25,
# 0.125, -0.25, 0.375, -0.5, 0.75, -1.0, -0.0, -0.03125] (1.25, 0.25, 0.75 are ties)
NV_TINY_CODES = [3, 8, 0, 9, 1, 9, 2, 0xA, 0, 8, 1, 9, 2, 0xA, 0, 8]
NV_SCALES = [448.0, 16.0, 1.5, 0.25, 2.0 ** -9, 96.0, 3.0, 0.875]   # e4m3 values
NV_WS2 = 2.0 ** -12          # every weight's amax is 6 * 448 * 2^-12, so weight_scale_2 = 2^-12


def e4m3_of_value(v):
    """e4m3 code of an exactly representable positive value (from the bit layout)."""
    if v < 2.0 ** -6:
        m = int(v / 2.0 ** -9)
        assert m * 2.0 ** -9 == v
        return m
    exp = 0
    while v >= 2.0 ** (exp + 1):
        exp += 1
    while v < 2.0 ** exp:
        exp -= 1
    m = (v / 2.0 ** exp - 1) * 8
    assert m == int(m), v
    return ((exp + 7) << 3) | int(m)


def nvfp4_case(e, kind, rows, cols):
    vals, codes, sc = [], [], []
    nb = cols // 16
    for r in range(rows):
        for b in range(nb):
            k = r * nb + b + e + 3 * len(kind)
            if k % 29 == 5:
                # a tiny block: s_b = 2^-11 is clamped to 2^-9 (code 0x01), so y = v / 4
                vals += [v * 2.0 ** -23 for v in NV_PATTERN]
                codes += NV_TINY_CODES
                sc.append(0x01)
                continue
            if k % 31 == 7:
                # an all-zero block (+0 and -0): s_b = 0 becomes 1.0 (0x38), every code 0
                vals += [0.0, -0.0] * 8
                codes += [0] * 16
                sc.append(0x38)
                continue
            S = NV_SCALES[k % len(NV_SCALES)]
            rot = k % 16
            pat = NV_PATTERN[rot:] + NV_PATTERN[:rot]
            for v in pat:
                vals.append(v * S * NV_WS2)
                c = E2M1_BY_HAND[abs(v)]
                codes.append(c | 8 if v < 0 else c)          # -0.0 is not < 0: code 0
            sc.append(e4m3_of_value(S))
    packed = bytes(codes[j] | codes[j + 1] << 4 for j in range(0, len(codes), 2))
    return vals, [("weight", "U8", [rows, cols // 2], packed),
                  ("weight_scale", "F8_E4M3", [rows, nb], bytes(sc)),
                  ("weight_scale_2", "F32", [], struct.pack("<f", NV_WS2))]


# int4: q = clamp(round_half_even(k), -8, 7) + 8 for w = k * s, group amax 7 * s
INT4_PATTERN = [7.0, -2.5, 0.5, -0.5, 1.5, 3.5, -6.5, -7.0, 2.0, -3.0, 6.0, -1.0, 4.5, -4.5, 0.0, 5.0]
INT4_Q = {7.0: 15, -2.5: 6, 0.5: 8, -0.5: 8, 1.5: 10, 3.5: 12, -6.5: 2, -7.0: 1, 2.0: 10,
          -3.0: 5, 6.0: 14, -1.0: 7, 4.5: 12, -4.5: 4, 0.0: 8, 5.0: 13}


def int4_case(e, kind, rows, cols):
    G = (cols + 127) // 128
    vals = [0.0] * (rows * cols)
    q = [[8] * cols for _ in range(rows)]
    scales = [[1.0] * rows for _ in range(G)]
    for o in range(rows):
        for g in range(G):
            if e == 1 and kind == "gate" and o == 3 and g == 1:
                continue                                   # an all-zero group: scale 1.0, q 8
            s = 2.0 ** -(3 + (o + g + e) % 6)
            scales[g][o] = s
            for i in range(g * 128, min(cols, (g + 1) * 128)):
                k = INT4_PATTERN[(i + o) % 16]
                vals[o * cols + i] = k * s
                q[o][i] = INT4_Q[k]
    qweight = b"".join(struct.pack("<I", sum(q[o][8 * r + k] << (4 * k) for k in range(8)))
                       for r in range(cols // 8) for o in range(rows))
    return vals, [("qweight", "I32", [cols // 8, rows], qweight),
                  ("qzeros", "I32", [G, rows // 8], bytes([0x77]) * (4 * G * rows // 8)),
                  ("scales", "F16", [G, rows],
                   b"".join(struct.pack("<e", scales[g][o]) for g in range(G) for o in range(rows))),
                  ("g_idx", "I32", [cols], b"".join(struct.pack("<i", i // 128) for i in range(cols)))]


def fp8_block_case(e, kind, rows, cols):
    tr, tc = (rows + 127) // 128, (cols + 127) // 128
    vals, codes = [], []
    for o in range(rows):
        for i in range(cols):
            t = (o // 128) * tc + i // 128
            p = 2.0 ** -(4 + 2 * t + e)
            k = ((o * 7 + i * 3 + t) % 31) - 15
            if o % 128 == 1 and i % 128 == 2:
                k = -448                                   # the tile amax: scale_inv = p
            vals.append(k * p)
            codes.append(0xFE if k == -448 else e4m3_of_int(k))
    inv = [2.0 ** -(4 + 2 * t + e) for t in range(tr * tc)]
    return vals, [("weight", "F8_E4M3", [rows, cols], bytes(codes)),
                  ("weight_scale_inv", "F32", [tr, tc], struct.pack("<%df" % len(inv), *inv))]


CASES = {"nvfp4": nvfp4_case, "int4": int4_case, "fp8_block": fp8_block_case}


def quant_config(fmt):
    excl = ["lm_head", "model.embed_tokens", "model.layers.*.mlp.gate"]
    if fmt == "nvfp4":
        q = {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16,
             "kv_cache_quant_algo": None, "exclude_modules": excl,
             "producer": {"name": "selftest", "version": "0"}}
        hq = {"producer": {"name": "selftest", "version": "0"},
              "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": None,
                               "group_size": 16, "exclude_modules": excl}}
        return q, hq
    if fmt == "fp8_block":
        return {"quant_method": "fp8", "activation_scheme": "dynamic",
                "weight_block_size": [128, 128], "modules_to_not_convert": excl}, None
    return {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True,
            "lm_head": False, "checkpoint_format": "gptq",
            "modules_in_block_to_quantize": ["mlp.experts"],
            "dynamic": {"-:model\\.embed_tokens": {}, "-:model\\.layers\\..*\\.mlp\\.gate": {}}}, None


def build_format_case(root, fmt):
    cfg = {"model_type": "qwen3_moe", "num_hidden_layers": 1, "hidden_size": BH,
           "num_experts": E, "moe_intermediate_size": BI, "vocab_size": 4}
    common = [("model.embed_tokens.weight", "BF16", [4, BH], bf16_bytes([0.5] * (4 * BH))),
              ("model.layers.0.mlp.gate.weight", "BF16", [E, BH], bf16_bytes([-0.25] * (E * BH)))]
    src_t, out_t = list(common), list(common)
    for e in range(E):
        for kind, pname, rows, cols in QPROJ:
            vals, outs = CASES[fmt](e, kind, rows, cols)
            base = "%s.%d.%s" % (QPREFIX, e, pname)
            src_t.append((base + ".weight", "BF16", [rows, cols], bf16_bytes(vals)))
            out_t += [(base + "." + suf, dt, shape, data) for suf, dt, shape, data in outs]
    src = os.path.join(root, "fmt-src-" + fmt)
    write_folder(src, cfg, src_t, index=False)
    q, hq = quant_config(fmt)
    ocfg = dict(cfg, quantization_config=q)

    def make(name, mutate=None):
        path = os.path.join(root, name)
        write_folder(path, ocfg, mutate(list(out_t)) if mutate else out_t)
        if hq is not None:
            with open(os.path.join(path, "hf_quant_config.json"), "w") as f:
                json.dump(hq, f)
        return path
    return src, make


def format_cases(root):
    corrupt = {"nvfp4": ("weight", 0x10), "int4": ("qweight", 0x01),
               "fp8_block": ("weight_scale_inv", 0x01)}
    for fmt in ("nvfp4", "int4", "fp8_block"):
        src, make = build_format_case(root, fmt)
        good = make("fmt-good-" + fmt)
        expect("hand-made %s passes" % fmt, 0, src, good, fmt, must_say="OK")
        expect("hand-made %s passes with per-expert amax" % fmt, 0, src, good, fmt,
               "--expert-amax", "per-expert")
        suffix, mask = corrupt[fmt]
        name = "%s.1.up_proj.%s" % (QPREFIX, suffix)
        bad = make("fmt-bad-" + fmt, lambda t: replace_tensor(t, name, flip_byte(5, mask)))
        expect("hand-made %s with one flipped bit is caught" % fmt, 1, src, bad, fmt,
               must_say=name)
    # the nvfp4 weight_scale and the int4 scales, corrupted too
    src, make = build_format_case(root, "nvfp4")
    name = QPREFIX + ".0.down_proj.weight_scale"
    expect("hand-made nvfp4 with a wrong block scale is caught", 1, src,
           make("fmt-bad2-nvfp4", lambda t: replace_tensor(t, name, flip_byte(7, 0x01))), "nvfp4",
           must_say=name)
    src, make = build_format_case(root, "int4")
    name = QPREFIX + ".0.gate_proj.scales"
    expect("hand-made int4 with a wrong fp16 scale is caught", 1, src,
           make("fmt-bad2-int4", lambda t: replace_tensor(t, name, flip_byte(2, 0x01))), "int4",
           must_say=name)


def main():
    unit_checks()
    root = tempfile.mkdtemp(prefix="formats_reference_selftest-")
    try:
        for mt in ("qwen3_moe", "mixtral"):
            prefix, proj, router = NAMES[mt]
            src = os.path.join(root, "src-" + mt)
            write_folder(src, config_for(mt), source_tensors(mt), index=False)
            fused = os.path.join(root, "src-fused-" + mt)
            write_folder(fused, config_for(mt), source_tensors(mt, fused=True), index=True)
            good = make_fp8(root, "good-" + mt, mt)
            expect(mt + ": correct fp8 passes", 0, src, good, "fp8", must_say="OK")
            expect(mt + ": correct fp8 from fused 3-D source passes", 0, fused, good, "fp8")
            w = "%s.1.%s" % (prefix, proj["up"])
            expect(mt + ": one flipped weight byte is caught", 1, src,
                   make_fp8(root, "flip-" + mt, mt, lambda t, c, h: replace_tensor(
                       t, w + ".weight", flip_byte(37))), "fp8", must_say=w + ".weight")
            expect(mt + ": a flipped sign bit (0x80) is caught", 1, src,
                   make_fp8(root, "sign-" + mt, mt, lambda t, c, h: replace_tensor(
                       t, w + ".weight", flip_byte(3, 0x80))), "fp8", must_say="element [0, 3]")
            s = "%s.0.%s.weight_scale" % (prefix, proj["down"])
            expect(mt + ": a wrong weight_scale is caught", 1, src,
                   make_fp8(root, "scale-" + mt, mt, lambda t, c, h: replace_tensor(
                       t, s, lambda x: (x[0], x[1], x[2], struct.pack("<f", FC2_POW * 2)))),
                   "fp8", must_say=s)
            expect(mt + ": a scale one ulp off is caught", 1, src,
                   make_fp8(root, "ulp-" + mt, mt, lambda t, c, h: replace_tensor(
                       t, s, flip_byte(0))), "fp8", must_say=s)
            expect(mt + ": a changed passthrough byte is caught", 1, src,
                   make_fp8(root, "pass-" + mt, mt, lambda t, c, h: replace_tensor(
                       t, "model.embed_tokens.weight", flip_byte(10))), "fp8",
                   must_say="model.embed_tokens.weight")
            expect(mt + ": a missing tensor is caught", 1, src,
                   make_fp8(root, "missing-" + mt, mt, lambda t, c, h: replace_tensor(
                       t, s, lambda x: None)), "fp8", must_say="missing")
            expect(mt + ": an extra tensor is caught", 1, src,
                   make_fp8(root, "extra-" + mt, mt, lambda t, c, h: t + [
                       (w + ".input_scale", "F32", [], struct.pack("<f", 1.0))]), "fp8",
                   must_say="unexpected")
            expect(mt + ": a wrong dtype is caught", 1, src,
                   make_fp8(root, "dtype-" + mt, mt, lambda t, c, h: replace_tensor(
                       t, w + ".weight", lambda x: (x[0], "U8", x[2], x[3]))), "fp8")
            expect(mt + ": per-expert amax differs from the shared export", 1, src, good, "fp8",
                   "--expert-amax", "per-expert", must_say=".1.")

            expect(mt + ": the fp8 folder is not an int4 export", 1, src, good, "int4")
            expect(mt + ": the fp8 folder is not an fp8_block export", 1, src, good, "fp8_block")
            expect(mt + ": in % 16 != 0 cannot be nvfp4 (exit 2)", 2, src, good, "nvfp4",
                   must_say="nvfp4 needs in % 16")

            # a broken index: one tensor mapped to the wrong shard
            broken = os.path.join(root, "index-" + mt)
            shutil.copytree(good, broken)
            ip = os.path.join(broken, "model.safetensors.index.json")
            with open(ip) as f:
                idx = json.load(f)
            name = "model.embed_tokens.weight"
            idx["weight_map"][name] = ("model-00002-of-00002.safetensors"
                                       if idx["weight_map"][name].startswith("model-00001")
                                       else "model-00001-of-00002.safetensors")
            with open(ip, "w") as f:
                json.dump(idx, f)
            expect(mt + ": an index weight_map error is caught", 1, src, broken, "fp8",
                   must_say="index")

            # format none: the experts written as the source bytes
            none = os.path.join(root, "none-" + mt)
            write_folder(none, config_for(mt), source_tensors(mt), index=True)
            expect(mt + ": correct 'none' export passes", 0, src, none, "none")
            expect(mt + ": 'none' export from the fused source passes", 0, fused, none, "none")

            # exclusion: expert 1's up written unquantized (amax still observed over all)
            def exclude_up(t, c, h):
                t = [x for x in t if not x[0].startswith(w + ".")]
                rows, cols, v = expert_ints(1, "up")
                return t + [(w + ".weight", "BF16", [rows, cols],
                             bf16_bytes([k * FC1_POW for k in v]))]
            excl_out = make_fp8(root, "excl-" + mt, mt, exclude_up)
            expect(mt + ": an excluded expert written in bf16 passes", 0, src, excl_out, "fp8",
                   "--exclude-regex", r"experts\.1\.(up_proj|w3)$")
            expect(mt + ": ...and fails without the exclusion", 1, src, excl_out, "fp8")
        format_cases(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if failures:
        print("\n%d self-test failure(s): %s" % (len(failures), ", ".join(failures)))
        return 1
    print("\nall self-tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
