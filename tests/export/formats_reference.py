#!/usr/bin/env python3
"""Independent reference checker for moequant's exported checkpoints.

Recomputes, from the SOURCE checkpoint alone, every tensor that docs/docs/formats.md says the exported
folder must hold, and compares them byte for byte with the QUANTIZED folder. Pure Python 3,
standard library only (no numpy, no torch): it shares no code with the tool.

    formats_reference.py --source DIR --quantized DIR --format {none,fp8,nvfp4,fp8_block,int4}
                         [--expert-amax shared|per-expert] [--exclude-regex R]... [--exclude GLOB]...
                         [--all-linear]

Exit status: 0 everything matches, 1 a mismatch (or a structural/config error), 2 the inputs
cannot be read (usage error, unreadable source, a source the formats cannot represent).

Float32 arithmetic is emulated on Python doubles: every intermediate is rounded to float32
(struct 'f'), one operation at a time, in the order docs/formats.md writes. For +, -, *, / on float32
operands the double result rounded to float32 equals the correctly rounded float32 result
(53 >= 2*24 + 2), so this is exact.

Amax semantics (this tool's calibration): with --expert-amax shared one amax per (MoE layer, fc1)
= max |w| over gate and up of ALL experts of the layer, and one per (layer, fc2) over all downs;
with per-expert, fc1 of expert E = max over its gate and up, fc2 = its down. Calibration observes
every routed-expert weight, excluded ones included (an exclude pattern only changes what is
written).

With --all-linear (the tool's --quantize all-linear) the dense linears of the decoder layers are
quantized too: attention (q/k/v/o; MLA's q_a/q_b/kv_a/kv_b), shared experts and dense MLPs, never
the router, a shared expert's gate or lm_head. The linears an engine fuses share one amax: q/k/v;
MLA's q_a_proj with kv_a_proj_with_mqa; gate with up of one MLP; = max |w| over the members.
Excluding one member leaves its whole group unquantized.
"""

import argparse
import bisect
import fnmatch
import json
import math
import mmap
import os
import re
import struct
import sys

FORMATS = ("none", "fp8", "nvfp4", "fp8_block", "int4")

DTYPE_SIZE = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "U8": 1,
              "I8": 1, "I16": 2, "I32": 4, "I64": 8, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8}

MAX_REPORTED = 10


class InputError(Exception):
    """The inputs cannot be read or are outside what the reference can compute (exit 2)."""


# ----------------------------------------------------------------------------------------------
# float32 / float16 / e4m3 / e2m1 numerics
# ----------------------------------------------------------------------------------------------

_F1 = struct.Struct("<f")


def f32(x):
    """Round a double to the nearest float32 (ties to even)."""
    return _F1.unpack(_F1.pack(x))[0]


def f32_list(values):
    n = len(values)
    fmt = "<%df" % n
    return list(struct.unpack(fmt, struct.pack(fmt, *values)))


def ieee_div(a, b):
    """a / b with IEEE semantics for b == 0 (Python raises)."""
    if b != 0:
        return a / b
    if a != a or a == 0:
        return math.nan
    neg = (math.copysign(1.0, a) < 0) != (math.copysign(1.0, b) < 0)
    return -math.inf if neg else math.inf


def _e4m3_value(code):
    e, m = (code >> 3) & 0xF, code & 7
    if e == 0:
        return m * 2.0 ** -9
    return (1.0 + m / 8.0) * 2.0 ** (e - 7)


E4M3_VALUES = [_e4m3_value(c) for c in range(127)]   # codes 0x00..0x7E; 0x7F is NaN
assert E4M3_VALUES[126] == 448.0 and E4M3_VALUES[1] == 2.0 ** -9
E4M3_MIDS = [(E4M3_VALUES[k] + E4M3_VALUES[k + 1]) / 2 for k in range(126)]  # exact in double
# tie at E4M3_MIDS[k]: between codes k and k+1, take the even one
E4M3_TIE = [k if k % 2 == 0 else k + 1 for k in range(126)]
E4M3_DECODE = [0.0] * 256
for _c in range(256):
    _mag = _c & 0x7F
    _v = math.nan if _mag == 0x7F else E4M3_VALUES[_mag]
    E4M3_DECODE[_c] = -_v if _c & 0x80 else _v


def e4m3_codes(values):
    """float32 values (as doubles) -> list of e4m3fn codes, RNE, saturating, sign copied."""
    mids, tie, bl, cs = E4M3_MIDS, E4M3_TIE, bisect.bisect_left, math.copysign
    out = []
    app = out.append
    for x in values:
        if x > 0:
            i = bl(mids, x)
            if i < 126 and mids[i] == x:
                i = tie[i]
            app(i)
        elif x < 0:
            a = -x
            i = bl(mids, a)
            if i < 126 and mids[i] == a:
                i = tie[i]
            app(0x80 | i)
        elif x == 0:
            app(0x80 if cs(1.0, x) < 0 else 0)
        else:  # NaN
            app(0xFF if cs(1.0, x) < 0 else 0x7F)
    return out


def e4m3(x):
    return e4m3_codes([x])[0]


E2M1_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
E2M1_MIDS = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]
E2M1_TIE = [k if k % 2 == 0 else k + 1 for k in range(7)]


def e2m1_codes(values):
    """float32 values -> e2m1 codes: ((y < 0) << 3) | index of the nearest magnitude."""
    mids, tie, bl = E2M1_MIDS, E2M1_TIE, bisect.bisect_left
    out = []
    app = out.append
    for y in values:
        if y < 0:
            a = -y
            i = bl(mids, a)
            if i < 7 and mids[i] == a:
                i = tie[i]
            app(8 | i)
        elif y >= 0:
            i = bl(mids, y)
            if i < 7 and mids[i] == y:
                i = tie[i]
            app(i)
        else:
            raise ValueError("NaN quotient")
    return out


def e2m1_value(code):
    v = E2M1_VALUES[code & 7]
    return -v if code & 8 else v


def fp16_bits(x):
    """float32 -> float16 bits, nearest, ties to even. OverflowError when out of range."""
    return struct.unpack("<H", struct.pack("<e", x))[0]


def fp16_value(bits):
    return struct.unpack("<e", struct.pack("<H", bits))[0]


def decode_floats(dtype, raw):
    """Bytes of a BF16/F16/F32 tensor -> list of exact values as doubles."""
    if dtype == "BF16":
        n = len(raw) // 2
        buf = bytearray(4 * n)
        buf[2::4] = raw[0::2]
        buf[3::4] = raw[1::2]
        return list(struct.unpack("<%df" % n, bytes(buf)))
    if dtype == "F16":
        return list(struct.unpack("<%de" % (len(raw) // 2), raw))
    if dtype == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    raise InputError("expert weights of dtype %s are not supported by the reference" % dtype)


def fmt_float(v):
    return repr(v)


# ----------------------------------------------------------------------------------------------
# safetensors reading
# ----------------------------------------------------------------------------------------------

class TensorRef:
    __slots__ = ("name", "dtype", "shape", "file", "start", "end", "_folder")

    def __init__(self, name, dtype, shape, file, start, end, folder):
        self.name, self.dtype, self.shape = name, dtype, shape
        self.file, self.start, self.end, self._folder = file, start, end, folder

    def data(self):
        return self._folder.read(self)

    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n


class Folder:
    """A Hugging Face model folder: config.json and one or more safetensors files."""

    def __init__(self, path, what, problems):
        self.path, self.what = path, what
        self.tensors = {}       # name -> TensorRef
        self.files = []         # safetensors file names
        self.has_index = False
        self.index_total_size = None
        self._maps = {}
        if not os.path.isdir(path):
            raise InputError("%s folder '%s' does not exist" % (what, path))
        cfg = os.path.join(path, "config.json")
        if not os.path.isfile(cfg):
            raise InputError("%s folder '%s' has no config.json" % (what, path))
        with open(cfg) as f:
            try:
                self.config = json.load(f)
            except ValueError as e:
                raise InputError("%s config.json: malformed JSON: %s" % (what, e))
        index = os.path.join(path, "model.safetensors.index.json")
        if os.path.isfile(index):
            self.has_index = True
            with open(index) as f:
                try:
                    idx = json.load(f)
                except ValueError as e:
                    raise InputError("%s index.json: malformed JSON: %s" % (what, e))
            wm = idx.get("weight_map")
            if not isinstance(wm, dict):
                raise InputError("%s index.json has no weight_map object" % what)
            md = idx.get("metadata")
            if isinstance(md, dict):
                self.index_total_size = md.get("total_size")
            files = []
            for name, fn in wm.items():
                if fn not in files:
                    files.append(fn)
            self.files = files
            per_file = {}
            for fn in files:
                fp = os.path.join(path, fn)
                if not os.path.isfile(fp):
                    raise InputError("%s index.json names '%s', which does not exist" % (what, fn))
                per_file[fn] = self._read_header(fn, problems)
            for fn, names in per_file.items():
                for name in names:
                    if name in self.tensors and self.tensors[name].file != fn:
                        problems.append("%s: tensor '%s' is in two files (%s, %s)"
                                        % (what, name, self.tensors[name].file, fn))
            for fn, refs in per_file.items():
                for name, ref in refs.items():
                    self.tensors.setdefault(name, ref)
                    if name not in wm:
                        problems.append("%s: tensor '%s' of %s is missing from the index "
                                        "weight_map" % (what, name, fn))
                    elif wm[name] != fn:
                        problems.append("%s: index maps '%s' to %s but it is stored in %s"
                                        % (what, name, wm[name], fn))
            for name, fn in wm.items():
                if name not in per_file.get(fn, {}):
                    problems.append("%s: index maps '%s' to %s, which does not hold it"
                                    % (what, name, fn))
            on_disk = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
            for f in on_disk:
                if f not in files:
                    problems.append("%s: '%s' is not referenced by the index" % (what, f))
        elif os.path.isfile(os.path.join(path, "model.safetensors")):
            self.files = ["model.safetensors"]
            self.tensors = self._read_header("model.safetensors", problems)
        else:
            raise InputError("%s folder '%s' has neither model.safetensors.index.json nor "
                             "model.safetensors" % (what, path))

    def _read_header(self, fn, problems):
        fp = os.path.join(self.path, fn)
        size = os.path.getsize(fp)
        with open(fp, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise InputError("%s: %s is shorter than 8 bytes" % (self.what, fn))
            n = struct.unpack("<Q", head)[0]
            if n > size - 8:
                raise InputError("%s: %s header length %d exceeds the file" % (self.what, fn, n))
            try:
                header = json.loads(f.read(n).decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise InputError("%s: %s has a malformed header: %s" % (self.what, fn, e))
        if not isinstance(header, dict):
            raise InputError("%s: %s header is not an object" % (self.what, fn))
        base = 8 + n
        data_size = size - base
        refs = {}
        spans = []
        for name, info in header.items():
            if name == "__metadata__":
                continue
            try:
                dtype, shape = info["dtype"], [int(d) for d in info["shape"]]
                start, end = (int(v) for v in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise InputError("%s: %s: bad header entry for '%s'" % (self.what, fn, name))
            if dtype not in DTYPE_SIZE:
                raise InputError("%s: %s: '%s' has unknown dtype %s" % (self.what, fn, name, dtype))
            ref = TensorRef(name, dtype, shape, fn, base + start, base + end, self)
            if not (0 <= start <= end <= data_size):
                raise InputError("%s: %s: '%s' data_offsets [%d, %d] outside the data (%d bytes)"
                                 % (self.what, fn, name, start, end, data_size))
            if end - start != ref.numel() * DTYPE_SIZE[dtype]:
                problems.append("%s: %s: '%s' has %d bytes, %s %s needs %d"
                                % (self.what, fn, name, end - start, dtype, shape,
                                   ref.numel() * DTYPE_SIZE[dtype]))
            refs[name] = ref
            spans.append((start, end, name))
        # no gaps or overlaps, whole data area covered (in header order for our own output)
        in_order = True
        pos = 0
        for start, end, name in spans:
            if start != pos:
                in_order = False
            pos = end
        ordered = sorted(spans)
        pos = 0
        for start, end, name in ordered:
            if start != pos:
                problems.append("%s: %s: '%s' starts at %d, expected %d (gap or overlap)"
                                % (self.what, fn, name, start, pos))
            pos = max(pos, end)
        if pos != data_size:
            problems.append("%s: %s: data ends at %d but the file holds %d data bytes"
                            % (self.what, fn, pos, data_size))
        if not in_order:
            self.not_header_order = getattr(self, "not_header_order", []) + [fn]
        return refs

    def read(self, ref):
        m = self._maps.get(ref.file)
        if m is None:
            f = open(os.path.join(self.path, ref.file), "rb")
            if os.path.getsize(f.name) == 0:
                return b""
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            f.close()
            self._maps[ref.file] = m
        return m[ref.start:ref.end]


# ----------------------------------------------------------------------------------------------
# source model: routed experts
# ----------------------------------------------------------------------------------------------

ROOT = r"model\.(?:language_model\.)?layers"  # a multimodal wrapper nests the text model
QWEN_EXPERT = re.compile(r"^(" + ROOT + r"\.(\d+)\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")
MIXTRAL_EXPERT = re.compile(r"^(model\.layers\.(\d+)\.block_sparse_moe\.experts)\.(\d+)\.(w1|w3|w2)\.weight$")
BLOCK = r"(?:mlp|block_sparse_moe|feed_forward)"
FUSED = re.compile(r"^(" + ROOT + r"\.(\d+)\." + BLOCK + r"\.experts)\.(gate_up_proj|down_proj)(?:\.weight)?$")
EXPERTS_PREFIX = re.compile(r"^(" + ROOT + r"\.(\d+)\." + BLOCK + r"\.experts)\.")
# Fused experts on disk, by family, as transformers' modeling code applies them: GPT-OSS's
# GptOssExperts computes x @ gate_up_proj [E, H, 2I] and takes gate = [..., ::2], up = [..., 1::2],
# then @ down_proj [E, I, H]; Llama-4's Llama4TextExperts computes x @ gate_up_proj [E, H, 2I] and
# chunks it into gate and up halves, then @ down_proj [E, I, H]; the others store nn.Linear rows
# ([E, 2I, H] gate rows first, [E, H, I]). (transposed, interleaved)
FUSED_LAYOUT = {"gpt_oss": (True, True), "llama4_text": (True, False)}
# GPT-OSS's MXFP4 release (transformers' integrations/mxfp4.py): rows [E, out, in/32, 16] of
# E2M1 codes, the even element in the low nibble, an e8m0 scale per 32: value = e2m1 * 2^(s-127).
MXFP4 = re.compile(r"^(" + ROOT + r"\.(\d+)\." + BLOCK + r"\.experts)\.(gate_up_proj|down_proj)_(blocks|scales)$")
E2M1_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
# Fused per-expert biases (GPT-OSS) are carried over as they are.
EXPERT_BIAS = re.compile(r"\.experts\.(gate_up_proj|down_proj)_bias$")
MIXTRAL_PROJ = {"w1": "gate", "w3": "up", "w2": "down"}
QWEN_PROJ = {"gate_proj": "gate", "up_proj": "up", "down_proj": "down"}


class ExpertWeight:
    """One per-expert 2-D weight of the source: lazily decoded."""

    def __init__(self, name_base, dtype, rows, cols, loader):
        self.base = name_base            # export name without ".weight"
        self.dtype, self.rows, self.cols = dtype, rows, cols
        self._loader = loader
        self._raw = None
        self._vals = None

    def raw(self):
        if self._raw is None:
            self._raw = self._loader()
        return self._raw

    def values(self):
        if self._vals is None:
            self._vals = decode_floats(self.dtype, self.raw())
        return self._vals

    def drop(self):
        self._raw = None
        self._vals = None


class SourceModel:
    def __init__(self, folder):
        cfg = folder.config
        mt = cfg.get("model_type")
        cfg = cfg.get("text_config") or cfg  # a multimodal wrapper's text model
        if mt in ("qwen3_moe", "qwen2_moe", "deepseek_v3", "kimi_k2", "glm4_moe", "gpt_oss",
                  "olmoe", "llama4_text", "qwen3_next", "qwen3_5_moe_text", "qwen3_5_moe"):
            self.naming = "qwen"  # mlp.experts.{E}.{gate,up,down}_proj
        elif mt == "mixtral":
            self.naming = "mixtral"
        else:
            raise InputError("source config.json: unsupported model_type %r" % (mt,))
        self.model_type = mt
        ne = cfg.get("num_experts", cfg.get("num_local_experts", cfg.get("n_routed_experts")))
        # Layers past num_hidden_layers (DeepSeek's and GLM's MTP layers) are carried over as they
        # are, their experts included.
        decoder_layers = cfg.get("num_hidden_layers", 0)
        if not isinstance(ne, int) or ne <= 0:
            raise InputError("source config.json: no num_experts / num_local_experts")
        self.num_experts = ne
        self.folder = folder
        self.passthrough = []            # names of non-expert tensors
        self.layers = {}                 # layer -> {expert: {"gate"/"up"/"down": ExpertWeight}}
        self.prefix = {}                 # layer -> experts prefix
        per_expert_re = QWEN_EXPERT if self.naming == "qwen" else MIXTRAL_EXPERT
        out_names = ({"gate": "gate_proj", "up": "up_proj", "down": "down_proj"}
                     if self.naming == "qwen" else {"gate": "w1", "up": "w3", "down": "w2"})
        self.out_names = out_names
        for name, ref in folder.tensors.items():
            m = per_expert_re.match(name)
            if m and int(m.group(2)) >= decoder_layers:
                self.passthrough.append(name)
                continue
            if m:
                prefix, layer, e, p = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
                kind = QWEN_PROJ[p] if self.naming == "qwen" else MIXTRAL_PROJ[p]
                if len(ref.shape) != 2:
                    raise InputError("source: expert weight '%s' is not 2-D: %s" % (name, ref.shape))
                self._add(layer, prefix, e, kind, ExpertWeight(
                    "%s.%d.%s" % (prefix, e, out_names[kind]), ref.dtype, ref.shape[0],
                    ref.shape[1], ref.data))
                continue
            if EXPERT_BIAS.search(name):
                self.passthrough.append(name)
                continue
            m = FUSED.match(name)
            if m:
                prefix, layer, which = m.group(1), int(m.group(2)), m.group(3)
                self._add_fused(layer, prefix, which, ref)
                continue
            m = MXFP4.match(name)
            if m:
                if m.group(4) == "blocks":
                    scales = name[: -len("blocks")] + "scales"
                    if scales not in folder.tensors:
                        raise InputError("source: '%s' has no scales" % name)
                    self._add_mxfp4(int(m.group(2)), m.group(1), m.group(3), ref,
                                    folder.tensors[scales])
                continue
            m = EXPERTS_PREFIX.match(name)
            if m and int(m.group(2)) < decoder_layers:
                raise InputError("source: unrecognized routed-expert tensor '%s'" % name)
            self.passthrough.append(name)
        for layer, experts in self.layers.items():
            if sorted(experts) != list(range(ne)):
                raise InputError("source layer %d has experts %s, config says %d"
                                 % (layer, sorted(experts), ne))
            shapes = None
            for e, projs in experts.items():
                if sorted(projs) != ["down", "gate", "up"]:
                    raise InputError("source layer %d expert %d has only %s"
                                     % (layer, e, sorted(projs)))
                g, u, d = projs["gate"], projs["up"], projs["down"]
                s = (g.rows, g.cols, u.rows, u.cols, d.rows, d.cols)
                if not (g.rows == u.rows == d.cols and g.cols == u.cols == d.rows):
                    raise InputError("source layer %d expert %d: inconsistent shapes gate %s up %s "
                                     "down %s" % (layer, e, [g.rows, g.cols], [u.rows, u.cols],
                                                  [d.rows, d.cols]))
                if shapes is not None and s != shapes:
                    raise InputError("source layer %d: experts of different shapes" % layer)
                shapes = s

    def _add(self, layer, prefix, e, kind, w):
        if self.prefix.setdefault(layer, prefix) != prefix:
            raise InputError("source layer %d has experts under two prefixes" % layer)
        slot = self.layers.setdefault(layer, {}).setdefault(e, {})
        if kind in slot:
            raise InputError("source: layer %d expert %d %s given twice" % (layer, e, kind))
        slot[kind] = w

    def _add_fused(self, layer, prefix, which, ref):
        if len(ref.shape) != 3:
            raise InputError("source: fused expert tensor '%s' is not 3-D: %s" % (ref.name, ref.shape))
        E, R, C = ref.shape
        if E != self.num_experts:
            raise InputError("source: '%s' holds %d experts, config says %d"
                             % (ref.name, E, self.num_experts))
        es = DTYPE_SIZE[ref.dtype]
        per = R * C * es
        transposed, interleaved = FUSED_LAYOUT.get(self.model_type, (False, False))
        if transposed:  # [E, in, out]: the [out, in] weight is the transpose
            R, C = C, R

        def loader_for(e, r0, r1, step=1):
            """Rows r0, r0 + step, ... < r1 of expert e's [out, in] weight, as raw bytes."""
            def load():
                data = ref.data()
                base = e * per
                out = bytearray()
                for r in range(r0, r1, step):
                    if transposed:  # row r of the weight is column r of [in, out]
                        for c in range(C):
                            k = base + (c * R + r) * es
                            out += data[k:k + es]
                    else:
                        out += data[base + r * C * es: base + (r + 1) * C * es]
                return bytes(out)
            return load

        for e in range(E):
            if which == "gate_up_proj":
                if R % 2:
                    raise InputError("source: '%s' has an odd fused row count %d" % (ref.name, R))
                i = R // 2
                parts = ((("gate", 0, R, 2), ("up", 1, R, 2)) if interleaved else
                         (("gate", 0, i, 1), ("up", i, R, 1)))
                for kind, r0, r1, step in parts:
                    self._add(layer, prefix, e, kind, ExpertWeight(
                        "%s.%d.%s" % (prefix, e, self.out_names[kind]), ref.dtype, i, C,
                        loader_for(e, r0, r1, step)))
            else:
                self._add(layer, prefix, e, "down", ExpertWeight(
                    "%s.%d.%s" % (prefix, e, self.out_names["down"]), ref.dtype, R, C,
                    loader_for(e, 0, R)))


    def _add_mxfp4(self, layer, prefix, which, blocks, scales):
        E, R, nb, _ = blocks.shape
        C = nb * 32
        interleaved = FUSED_LAYOUT.get(self.model_type, (False, False))[1]

        def loader_for(e, r0, r1, step=1):
            """Rows r0, r0 + step, ... < r1 of expert e as bf16 bytes (every value is exact)."""
            def load():
                b, sc = blocks.data(), scales.data()
                out = bytearray()
                for r in range(r0, r1, step):
                    for c in range(C):
                        byte = b[((e * R + r) * nb + c // 32) * 16 + (c % 32) // 2]
                        code = byte >> 4 if c % 2 else byte & 15
                        v = math.ldexp(E2M1_VALUES[code & 7], sc[(e * R + r) * nb + c // 32] - 127)
                        out += struct.pack("<f", -v if code & 8 else v)[2:]
                return bytes(out)
            return load

        for e in range(E):
            if which == "gate_up_proj":
                i = R // 2
                parts = ((("gate", 0, R, 2), ("up", 1, R, 2)) if interleaved else
                         (("gate", 0, i, 1), ("up", i, R, 1)))
                for kind, r0, r1, step in parts:
                    self._add(layer, prefix, e, kind, ExpertWeight(
                        "%s.%d.%s" % (prefix, e, self.out_names[kind]), "BF16", i, C,
                        loader_for(e, r0, r1, step)))
            else:
                self._add(layer, prefix, e, "down", ExpertWeight(
                    "%s.%d.%s" % (prefix, e, self.out_names["down"]), "BF16", R, C,
                    loader_for(e, 0, R)))


DENSE_LINEAR = re.compile(
    r"^(model\.layers\.(\d+)\.(?:self_attn\.(q_proj|k_proj|v_proj|o_proj|q_a_proj|q_b_proj|"
    r"kv_a_proj_with_mqa|kv_b_proj)|mlp\.(?:shared_experts?\.)?(gate_proj|up_proj|down_proj)))"
    r"\.weight$")
FUSION = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "q_a_proj": "qkv_a",
          "kv_a_proj_with_mqa": "qkv_a", "gate_proj": "gate_up", "up_proj": "gate_up"}


def dense_linears(model, src):
    """base -> (fusion group key, ExpertWeight) for every dense linear --all-linear quantizes."""
    layers = model.folder.config.get("num_hidden_layers", 0)
    out = {}
    for name in model.passthrough:
        m = DENSE_LINEAR.match(name)
        if not m or int(m.group(2)) >= layers:
            continue
        base = m.group(1)
        leaf = base.rsplit(".", 1)[1]
        parent = base.rsplit(".", 1)[0]
        group = (parent, FUSION.get(leaf, leaf))
        ref = src.tensors[name]
        if len(ref.shape) != 2:
            raise InputError("source: dense linear '%s' is not 2-D" % name)
        out[base] = (group, ExpertWeight(base, ref.dtype, ref.shape[0], ref.shape[1], ref.data))
    return out


# ----------------------------------------------------------------------------------------------
# reference quantizers: each returns [(suffix, dtype, shape, bytes, describe)]
# describe(flat_index) -> text about how the expected value was obtained
# ----------------------------------------------------------------------------------------------

def check_finite(w):
    for v in w.values():
        if v != v or v in (math.inf, -math.inf):
            raise InputError("source expert weight '%s.weight' holds NaN or Inf (the export must "
                             "fail)" % w.base)


def abs_max(vals):
    return max(map(abs, vals)) if vals else 0.0


def q_none(w, amax):
    return [("weight", w.dtype, [w.rows, w.cols], w.raw(), None)]


def q_fp8(w, amax):
    scale = 1.0 if amax == 0 else f32(amax / 448.0)
    vals = w.values()
    y = f32_list([v / scale for v in vals])
    codes = e4m3_codes(y)

    def describe(k):
        return ("w=%s weight_scale=%s (amax %s) y=f32(w/scale)=%s -> e4m3 0x%02x (%s)"
                % (fmt_float(vals[k]), fmt_float(scale), fmt_float(amax), fmt_float(y[k]),
                   codes[k], fmt_float(E4M3_DECODE[codes[k]])))

    return [("weight", "F8_E4M3", [w.rows, w.cols], bytes(codes), describe),
            ("weight_scale", "F32", [], struct.pack("<f", scale),
             lambda k: "amax=%s / 448 = %s" % (fmt_float(amax), fmt_float(scale)))]


def q_nvfp4(w, amax):
    rows, cols = w.rows, w.cols
    if cols % 16:
        raise InputError("%s.weight: nvfp4 needs in %% 16 == 0, got [%d, %d] (the export must fail)"
                         % (w.base, rows, cols))
    ws2 = 1.0 if amax == 0 else f32(amax / 2688.0)   # 6 * 448, an exact constant
    denom = f32(6.0 * ws2)
    vals = w.values()
    nb = cols // 16
    scale_codes = []
    sb_list = []
    for o in range(rows):
        row = vals[o * cols:(o + 1) * cols]
        for b in range(nb):
            bamax = abs_max(row[b * 16:(b + 1) * 16])
            sb = f32(ieee_div(bamax, denom))
            if sb == 0:
                sb = 1.0
            if sb < 2.0 ** -9:
                sb = 2.0 ** -9
            elif sb > 448.0:
                sb = 448.0
            sb_list.append(sb)
            scale_codes.append(e4m3(sb))
    dec = [E4M3_DECODE[c] for c in scale_codes]
    divs = f32_list([d * ws2 for d in dec])
    y = [0.0] * len(vals)
    for blk in range(rows * nb):
        d = divs[blk]
        lo = blk * 16
        if d != 0:
            y[lo:lo + 16] = [v / d for v in vals[lo:lo + 16]]
        else:
            y[lo:lo + 16] = [ieee_div(v, d) for v in vals[lo:lo + 16]]
    y = f32_list(y)
    if any(v != v for v in y):
        raise InputError("%s.weight: nvfp4 quotient is NaN (scale product underflows to 0): "
                         "docs/formats.md does not define this" % w.base)
    codes = e2m1_codes(y)
    packed = bytes([lo | (hi << 4) for lo, hi in zip(codes[0::2], codes[1::2])])

    def describe_w(k):
        o, j = divmod(k, cols // 2)
        parts = []
        for i in (2 * j, 2 * j + 1):
            blk = o * nb + i // 16
            e = o * cols + i
            parts.append("elem[%d,%d]: w=%s weight_scale[%d,%d]=%s ws2=%s f32(scale*ws2)=%s "
                         "y=%s -> code 0x%x (%s)"
                         % (o, i, fmt_float(vals[e]), o, i // 16, fmt_float(dec[blk]),
                            fmt_float(ws2), fmt_float(divs[blk]), fmt_float(y[e]), codes[e],
                            e2m1_value(codes[e])))
        return "; ".join(parts)

    def describe_s(k):
        o, b = divmod(k, nb)
        row = vals[o * cols:(o + 1) * cols]
        return ("block amax=%s / f32(6*ws2)=%s -> s_b=%s (clamped) -> e4m3 0x%02x (%s); ws2=%s "
                "(amax %s)" % (fmt_float(abs_max(row[b * 16:(b + 1) * 16])), fmt_float(denom),
                               fmt_float(sb_list[k]), scale_codes[k],
                               fmt_float(E4M3_DECODE[scale_codes[k]]), fmt_float(ws2),
                               fmt_float(amax)))

    return [("weight", "U8", [rows, cols // 2], packed, describe_w),
            ("weight_scale", "F8_E4M3", [rows, nb], bytes(scale_codes), describe_s),
            ("weight_scale_2", "F32", [], struct.pack("<f", ws2),
             lambda k: "amax=%s / 2688 = %s" % (fmt_float(amax), fmt_float(ws2)))]


def q_fp8_block(w, amax):
    rows, cols = w.rows, w.cols
    tr, tc = (rows + 127) // 128, (cols + 127) // 128
    vals = w.values()
    tamax = [0.0] * (tr * tc)
    for o in range(rows):
        row = vals[o * cols:(o + 1) * cols]
        base = (o // 128) * tc
        for t in range(tc):
            m = abs_max(row[t * 128:(t + 1) * 128])
            if m > tamax[base + t]:
                tamax[base + t] = m
    scales = [1.0 if m == 0 else f32(m / 448.0) for m in tamax]
    y = []
    for o in range(rows):
        row = vals[o * cols:(o + 1) * cols]
        base = (o // 128) * tc
        for t in range(tc):
            s = scales[base + t]
            y.extend([v / s for v in row[t * 128:(t + 1) * 128]])
    y = f32_list(y)
    codes = e4m3_codes(y)

    def describe_w(k):
        o, i = divmod(k, cols)
        t = (o // 128) * tc + i // 128
        return ("w=%s weight_scale_inv[%d,%d]=%s y=%s -> e4m3 0x%02x (%s)"
                % (fmt_float(vals[k]), o // 128, i // 128, fmt_float(scales[t]), fmt_float(y[k]),
                   codes[k], fmt_float(E4M3_DECODE[codes[k]])))

    return [("weight", "F8_E4M3", [rows, cols], bytes(codes), describe_w),
            ("weight_scale_inv", "F32", [tr, tc], struct.pack("<%df" % len(scales), *scales),
             lambda k: "tile amax=%s / 448 = %s" % (fmt_float(tamax[k]), fmt_float(scales[k])))]


def q_int4(w, amax):
    rows, cols = w.rows, w.cols
    if rows % 8 or cols % 8:
        raise InputError("%s.weight: int4 needs out %% 8 == 0 and in %% 8 == 0, got [%d, %d] "
                         "(the export must fail)" % (w.base, rows, cols))
    G = (cols + 127) // 128
    vals = w.values()
    scale_bits = [0] * (G * rows)         # [G, out]
    words = [0] * ((cols // 8) * rows)    # [in/8, out]
    gam = {}
    rnd = round
    for o in range(rows):
        row = vals[o * cols:(o + 1) * cols]
        q = []
        for g in range(G):
            grp = row[g * 128:(g + 1) * 128]
            m = abs_max(grp)
            gam[(o, g)] = m
            if m == 0:
                s32 = 1.0
            else:
                s32 = f32(m / 7.0)
            try:
                bits = fp16_bits(s32)
            except OverflowError:
                raise InputError("%s.weight: int4 scale %s of row %d group %d is beyond float16 "
                                 "(the export must fail)" % (w.base, s32, o, g))
            sc = fp16_value(bits)
            if sc == 0:
                raise InputError("%s.weight: int4 scale of row %d group %d (group amax %s) rounds "
                                 "to float16 zero: docs/formats.md leaves this undefined and the tool "
                                 "refuses zero scales" % (w.base, o, g, m))
            scale_bits[g * rows + o] = bits
            for v in f32_list([x / sc for x in grp]):
                r = rnd(v)
                q.append((7 if r > 7 else (-8 if r < -8 else r)) + 8)
        words[o::rows] = [q[i] | q[i + 1] << 4 | q[i + 2] << 8 | q[i + 3] << 12 | q[i + 4] << 16
                          | q[i + 5] << 20 | q[i + 6] << 24 | q[i + 7] << 28
                          for i in range(0, cols, 8)]

    def q_of(o, i):
        g = i // 128
        sc = fp16_value(scale_bits[g * rows + o])
        y = f32(vals[o * cols + i] / sc)
        r = rnd(y)
        return y, sc, (7 if r > 7 else (-8 if r < -8 else r)) + 8

    def describe_qw(k):
        r, o = divmod(k, rows)
        parts = []
        for kk in range(8):
            i = 8 * r + kk
            y, sc, qq = q_of(o, i)
            parts.append("q[%d,%d]: w=%s scale=%s y=%s q=%d" % (o, i, fmt_float(vals[o * cols + i]),
                                                                 fmt_float(sc), fmt_float(y), qq))
        return "word 0x%08x = " % words[k] + "; ".join(parts)

    def describe_sc(k):
        g, o = divmod(k, rows)
        m = gam[(o, g)]
        return "group amax[%d,%d]=%s f32(/7)=%s -> fp16 %s" % (
            o, g, fmt_float(m), fmt_float(1.0 if m == 0 else f32(m / 7.0)),
            fmt_float(fp16_value(scale_bits[k])))

    n_z = G * (rows // 8)
    return [("qweight", "I32", [cols // 8, rows], struct.pack("<%dI" % len(words), *words),
             describe_qw),
            ("qzeros", "I32", [G, rows // 8], b"\x77\x77\x77\x77" * n_z,
             lambda k: "every qzeros word is 0x77777777"),
            ("scales", "F16", [G, rows], struct.pack("<%dH" % len(scale_bits), *scale_bits),
             describe_sc),
            ("g_idx", "I32", [cols], struct.pack("<%di" % cols, *[i // 128 for i in range(cols)]),
             lambda k: "g_idx[i] = i / 128")]


QUANTIZERS = {"none": q_none, "fp8": q_fp8, "nvfp4": q_nvfp4, "fp8_block": q_fp8_block,
              "int4": q_int4}


# ----------------------------------------------------------------------------------------------
# comparison and reporting
# ----------------------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.failures = 0
        self.printed = 0
        self.warnings = []
        self.counts = {}

    def fail(self, msg):
        self.failures += 1
        if self.printed < MAX_REPORTED:
            print("MISMATCH: " + msg)
            self.printed += 1

    def detail(self, msg):
        """One more line about the last failure (counts against the printed lines only)."""
        if self.printed < MAX_REPORTED:
            print("MISMATCH: " + msg)
            self.printed += 1

    def count(self, kind):
        self.counts[kind] = self.counts.get(kind, 0) + 1


def decode_element(dtype, b):
    if dtype == "F32":
        return repr(struct.unpack("<f", b)[0])
    if dtype == "F16":
        return repr(struct.unpack("<e", b)[0])
    if dtype == "BF16":
        return repr(struct.unpack("<f", b"\x00\x00" + b)[0])
    if dtype == "F8_E4M3":
        return "0x%02x (%s)" % (b[0], E4M3_DECODE[b[0]])
    if dtype == "U8":
        return "0x%02x (lo %s, hi %s)" % (b[0], e2m1_value(b[0] & 15), e2m1_value(b[0] >> 4))
    if dtype == "I32":
        return "0x%08x" % struct.unpack("<I", b)[0]
    return b.hex()


def unravel(k, shape):
    idx = []
    for d in reversed(shape):
        if d == 0:
            return [k]
        k, r = divmod(k, d)
        idx.append(r)
    return list(reversed(idx))


def compare(report, out, name, kind, dtype, shape, expected, describe=None):
    ref = out.tensors.get(name)
    if ref is None:
        report.fail("tensor '%s' is missing from the output (expected %s %s)" % (name, dtype, shape))
        return
    report.count(kind)
    if ref.dtype != dtype or list(ref.shape) != list(shape):
        report.fail("'%s': expected %s %s, got %s %s" % (name, dtype, shape, ref.dtype, ref.shape))
        return
    got = ref.data()
    if got == expected:
        return
    if len(got) != len(expected):
        report.fail("'%s': expected %d bytes, got %d" % (name, len(expected), len(got)))
        return
    es = DTYPE_SIZE[dtype]
    n = len(expected) // es
    bad = []
    if es == 1:
        bad = [k for k in range(n) if got[k] != expected[k]]
    else:
        bad = [k for k in range(n) if got[k * es:(k + 1) * es] != expected[k * es:(k + 1) * es]]
    report.failures += 1
    first = True
    for k in bad:
        if report.printed >= MAX_REPORTED:
            break
        e, g = expected[k * es:(k + 1) * es], got[k * es:(k + 1) * es]
        msg = "'%s' element %s (flat %d): expected %s, got %s" % (
            name, unravel(k, shape), k, decode_element(dtype, e), decode_element(dtype, g))
        if describe is not None:
            try:
                msg += "\n    reference: " + describe(k)
            except Exception as ex:  # diagnostics must never hide the mismatch itself
                msg += "\n    (reference detail unavailable: %s)" % ex
        if first:
            msg += "\n    (%d of %d elements differ)" % (len(bad), n)
            first = False
        report.detail(msg)


def check_config_unchanged(report, src, out):
    """Everything but quantization_config is the source's config (the quantization_config and
    hf_quant_config.json are engine_schema.py's to check, as the engines read them)."""
    scfg, ocfg = src.config, out.config
    for k in set(scfg) | set(ocfg):
        if k == "quantization_config":
            continue
        if scfg.get(k, "<absent>") != ocfg.get(k, "<absent>"):
            report.fail("config.json key '%s': source %r, output %r"
                        % (k, scfg.get(k, "<absent>"), ocfg.get(k, "<absent>")))
    report.count("config")


def check_output_layout(report, out, problems):
    for p in problems:
        report.fail(p)
    if not out.has_index:
        report.fail("output has no model.safetensors.index.json (docs/formats.md requires it)")
    else:
        n = len(out.files)
        pat = re.compile(r"^model-(\d{5})-of-(\d{5})\.safetensors$")
        for fn in out.files:
            m = pat.match(fn)
            if not m or int(m.group(2)) != n or not 1 <= int(m.group(1)) <= n:
                report.fail("output shard name '%s' is not model-0000i-of-%05d.safetensors" % (fn, n))
        total = sum(t.end - t.start for t in out.tensors.values())
        if out.index_total_size != total:
            report.fail("index.json metadata.total_size is %r, the tensors hold %d bytes"
                        % (out.index_total_size, total))
    for fn in getattr(out, "not_header_order", []):
        report.fail("output %s: data is not in header order" % fn)


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------

def run(args):
    src_problems, out_problems = [], []
    src = Folder(args.source, "source", src_problems)
    if src_problems:
        raise InputError("source checkpoint is malformed: " + "; ".join(src_problems[:5]))
    out = Folder(args.quantized, "output", out_problems)
    model = SourceModel(src)
    report = Report()
    check_output_layout(report, out, out_problems)

    regexes = []
    for r in args.exclude_regex:
        try:
            regexes.append(re.compile(r))
        except re.error as e:
            raise InputError("--exclude-regex %r: %s" % (r, e))

    def excluded(base):
        return any(r.search(base) for r in regexes) or \
            any(fnmatch.fnmatchcase(base, g) for g in args.exclude)

    # shape requirements of the format: a source outside them must make the export fail
    for layer in sorted(model.layers):
        for e, projs in sorted(model.layers[layer].items()):
            for w in projs.values():
                if excluded(w.base):
                    continue
                if args.format == "nvfp4" and w.cols % 16:
                    raise InputError("%s.weight [%d, %d]: nvfp4 needs in %% 16 == 0, so the export "
                                     "must fail" % (w.base, w.rows, w.cols))
                if args.format == "int4" and (w.rows % 8 or w.cols % 8):
                    raise InputError("%s.weight [%d, %d]: int4 needs out %% 8 == 0 and in %% 8 == 0,"
                                     " so the export must fail" % (w.base, w.rows, w.cols))

    expected_names = set()

    # --all-linear: the dense linears, quantized with their fusion group's amax
    dense = dense_linears(model, src) if args.all_linear and args.format != "none" else {}
    groups = {}
    for base, (group, w) in dense.items():
        groups.setdefault(group, []).append(base)
    for group, members in sorted(groups.items()):
        if any(excluded(b) for b in members):
            for b in members:
                del dense[b]
            continue
        for b in members:
            check_finite(dense[b][1])
        amax = max(abs_max(dense[b][1].values()) for b in members)
        for b in members:
            w = dense[b][1]
            for suffix, dtype, shape, data, describe in QUANTIZERS[args.format](w, amax):
                name = b + "." + suffix
                expected_names.add(name)
                compare(report, out, name, "dense " + suffix, dtype, shape, data, describe)
            if args.allow_input_scale and args.format in ("fp8", "nvfp4"):
                name = b + ".input_scale"
                if name in out.tensors:
                    expected_names.add(name)
                    report.count("dense input_scale (shape only)")
            w.drop()
        if args.allow_input_scale and args.format in ("fp8", "nvfp4"):
            scales = {out.tensors[b + ".input_scale"].data() for b in members
                      if b + ".input_scale" in out.tensors}
            if len(scales) > 1:
                report.fail("the fused group %s has different input_scale" % (members,))
    dense_weights = {b + ".weight" for b in dense}

    # non-expert tensors: byte-identical
    for name in model.passthrough:
        if name in dense_weights:
            continue
        ref = src.tensors[name]
        expected_names.add(name)
        compare(report, out, name, "passthrough", ref.dtype, ref.shape, ref.data())

    excluded_modules = []
    n_params = 0
    for layer in sorted(model.layers):
        experts = model.layers[layer]
        # calibration: every routed-expert weight, excluded ones included
        for e in experts.values():
            for w in e.values():
                check_finite(w)
        fc1 = {e: max(abs_max(p["gate"].values()), abs_max(p["up"].values()))
               for e, p in experts.items()}
        fc2 = {e: abs_max(p["down"].values()) for e, p in experts.items()}
        if args.expert_amax == "shared":
            m1, m2 = max(fc1.values()), max(fc2.values())
            fc1 = {e: m1 for e in fc1}
            fc2 = {e: m2 for e in fc2}
        for e in sorted(experts):
            for kind in ("gate", "up", "down"):
                w = experts[e][kind]
                amax = fc2[e] if kind == "down" else fc1[e]
                fmt = args.format
                if fmt != "none" and excluded(w.base):
                    fmt = "none"
                    excluded_modules.append(w.base)
                outs = QUANTIZERS[fmt](w, amax)
                n_params += w.rows * w.cols
                for suffix, dtype, shape, data, describe in outs:
                    name = w.base + "." + suffix
                    expected_names.add(name)
                    label = "expert " + suffix if fmt != "none" else "expert weight (unquantized)"
                    compare(report, out, name, label, dtype, shape, data, describe)
                if args.allow_input_scale and fmt in ("fp8", "nvfp4"):
                    name = w.base + ".input_scale"
                    ref = out.tensors.get(name)
                    if ref is not None:
                        expected_names.add(name)
                        report.count("expert input_scale (shape only)")
                        if ref.dtype != "F32" or ref.shape != []:
                            report.fail("'%s': expected F32 [], got %s %s"
                                        % (name, ref.dtype, ref.shape))
                        else:
                            v = struct.unpack("<f", ref.data())[0]
                            if not (v > 0 and v != math.inf):
                                report.fail("'%s' is %r, expected a positive finite scale"
                                            % (name, v))
                w.drop()
        if args.allow_input_scale and args.format in ("fp8", "nvfp4"):
            for e in sorted(experts):
                g = out.tensors.get(experts[e]["gate"].base + ".input_scale")
                u = out.tensors.get(experts[e]["up"].base + ".input_scale")
                if g is not None and u is not None and g.data() != u.data():
                    report.fail("layer %d expert %d: gate and up input_scale differ" % (layer, e))

    extra = sorted(set(out.tensors) - expected_names)
    for name in extra:
        t = out.tensors[name]
        report.fail("unexpected tensor '%s' (%s %s) in the output" % (name, t.dtype, t.shape))

    check_config_unchanged(report, src, out)

    print("formats_reference: format %s, expert amax %s, source %s (%s, %d MoE layer(s) x %d "
          "experts, %d expert weight elements), output %s (%d file(s), %d tensors)"
          % (args.format, args.expert_amax, args.source, model.model_type, len(model.layers),
             model.num_experts, n_params, args.quantized, len(out.files), len(out.tensors)))
    for kind in sorted(report.counts):
        print("  checked %5d  %s" % (report.counts[kind], kind))
    if excluded_modules:
        print("  %d expert weight(s) excluded (expected unquantized)" % len(excluded_modules))
    for wmsg in report.warnings:
        print("  warning: " + wmsg)
    if report.failures:
        print("FAIL: %d mismatching tensor(s) or check(s); at most %d lines shown above"
              % (report.failures, MAX_REPORTED))
        return 1
    print("OK: every tensor matches docs/formats.md")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="source Hugging Face model folder")
    ap.add_argument("--quantized", required=True, help="exported folder to check")
    ap.add_argument("--format", required=True, choices=FORMATS)
    ap.add_argument("--expert-amax", default="shared", choices=("shared", "per-expert"))
    ap.add_argument("--exclude-regex", action="append", default=[],
                    help="expert module (e.g. model.layers.0.mlp.experts.3.gate_proj) left "
                         "unquantized when the regex is found in its name (the tool's re:REGEX)")
    ap.add_argument("--exclude", action="append", default=[],
                    help="same with a glob matched against the whole module name")
    ap.add_argument("--all-linear", action="store_true",
                    help="the export quantized the dense linears too (--quantize all-linear)")
    ap.add_argument("--allow-input-scale", action="store_true",
                    help="accept calibrated input_scale tensors (checked for shape and sign only)")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except InputError as e:
        print("formats_reference: error: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
