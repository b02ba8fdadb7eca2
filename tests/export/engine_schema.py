#!/usr/bin/env python3
"""Reads an exported folder the way serving engines read it, and checks it against its source.

Usage: engine_schema.py [--source SRC] --quantized OUT --format {fp8,nvfp4,fp8_block,int4,none}
                        [--calibrated] [--all-linear] [--kv-cache]

Written from docs/formats.md ("The exported checkpoint") and the engines' loaders, independently of
moequant's C++ (Python standard library only):
  - config.json "quantization_config" must be exactly the schema of the expected scheme
    (ModelOpt FP8 / NVFP4 when calibrated, W4A16_NVFP4 / vLLM fp8 dynamic when not, fp8 128x128
    blocks, GPTQ int4); hf_quant_config.json exists for ModelOpt only, in the nested form, with
    the same exclusions.
  - The exclusions are read as the engines read them: ModelOpt flat form -> "ignore" only (vLLM,
    SGLang); nested form -> quantization.exclude_modules (TensorRT-LLM); fp8 -> "ignored_layers"
    (vLLM) and "modules_to_not_convert" (transformers); gptq -> "dynamic" "-:" regexes with
    re.match. A module is excluded by vLLM's rule when it equals an entry, is a substring of one,
    or fnmatch-es one; by transformers' when an entry is a substring of it.
  - For every linear module of the SOURCE (its 2-D weights but the embedding, lm_head, every
    routed-expert projection, and each MoE layer's fused prefix that vLLM queries): treated as
    quantized by every reader <=> stored quantized on disk (scales beside it). Without --source
    (an export of a host program's modules) the modules are those the output's tensors show.
  - A static-activation algorithm (FP8, NVFP4) carries an input_scale beside every quantized
    weight, a finite float32 scalar > 0, equal for gate and up; the others carry none.
  - The linears an engine fuses into one (q/k/v, gate/up of experts, shared experts and dense
    MLPs, MLA's q_a_proj/kv_a_proj_with_mqa) carry equal scalar scales (weight_scale,
    weight_scale_2, input_scale): the engines keep one.
  - --all-linear: every linear of the decoder layers but the router, a shared expert's gate and
    the MTP layers is stored quantized; the router and lm_head never are.
  - --kv-cache: the FP8 KV-cache keys (flat kv_cache_scheme and kv_cache_quant_algo, nested
    kv_cache_quant_algo "FP8") and, for every decoder layer, ModelOpt's
    model.layers.N.self_attn.k_proj.k_scale / v_proj.v_scale, float32 scalars > 0; without it,
    kv_cache_quant_algo null and no such tensor.
Exit code 0 when everything holds, 1 with one line per problem otherwise.
"""
import argparse
import fnmatch
import json
import math
import os
import re
import struct
import sys

EXPERT_RE = re.compile(r"^(model\.(?:language_model\.)?layers\.\d+\.(?:mlp|block_sparse_moe|feed_forward)"
                       r"\.experts)\.(\d+)\.(\w+)$")


def text_config(cfg):
    """The text model's keys: config.json itself, or a multimodal wrapper's text_config."""
    return cfg.get("text_config") or cfg


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


class Folder:
    def __init__(self, path):
        self.path = path
        with open(os.path.join(path, "config.json")) as f:
            self.config = json.load(f)
        index = os.path.join(path, "model.safetensors.index.json")
        if os.path.isfile(os.path.join(path, "model.safetensors")):
            files = ["model.safetensors"]
        else:
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        self.tensors = {}
        for fn in files:
            header, start = read_header(os.path.join(path, fn))
            for name, info in header.items():
                self.tensors[name] = (fn, start, info)

    def has(self, name):
        return name in self.tensors

    def shape(self, name):
        return self.tensors[name][2]["shape"]

    def scalar_f32(self, name):
        fn, start, info = self.tensors[name]
        if info["dtype"] != "F32" or info["shape"] != []:
            return None
        with open(os.path.join(self.path, fn), "rb") as f:
            f.seek(start + info["data_offsets"][0])
            return struct.unpack("<f", f.read(4))[0]


def output_modules(out):
    """(name, is_routed_expert) for every linear module the output's tensors show."""
    names = set()
    for name in out.tensors:
        for suffix in (".weight", ".qweight"):
            if name.endswith(suffix) and name != "model.embed_tokens.weight" and \
                    (suffix == ".qweight" or len(out.shape(name)) == 2):
                names.add(name[: -len(suffix)])
    names.add("lm_head")
    return [(m, bool(EXPERT_RE.match(m))) for m in sorted(names)]


def routed_expert(module, cfg):
    """A routed expert of a decoder layer (the experts of MTP layers past num_hidden_layers are
    carried over unquantized)."""
    m = EXPERT_RE.match(module)
    return bool(m) and int(re.search(r"layers\.(\d+)\.", module).group(1)) < \
        text_config(cfg)["num_hidden_layers"]


def source_modules(src):
    """(name, is_routed_expert) for every linear module an engine builds from the source."""
    cfg = src.config
    out, seen = [], set()
    family_projs = ("w1", "w3", "w2") if cfg["model_type"] == "mixtral" else (
        "gate_proj", "up_proj", "down_proj")
    text = text_config(cfg)
    n_experts = text.get("num_experts") or text.get("num_local_experts") or \
        text.get("n_routed_experts")
    for name in sorted(src.tensors):
        # A fused 3-D tensor (or GPT-OSS's MXFP4 blocks and scales): every expert of the layer.
        if re.search(r"\.experts\.(gate_up|down)_proj(_blocks|_scales)?$", name):
            prefix = name[: name.rindex(".experts.") + len(".experts")]
            if re.search(r"gate_up_proj(_blocks)?$", name):
                for e in range(n_experts):
                    for p in family_projs:
                        m = "%s.%d.%s" % (prefix, e, p)
                        if m not in seen:
                            seen.add(m)
                            out.append((m, True))
            continue
        if not name.endswith(".weight") or len(src.shape(name)) != 2:
            continue
        if name.endswith("embed_tokens.weight"):  # the model's, or an MTP layer's own
            continue
        m = name[: -len(".weight")]
        if m not in seen:
            seen.add(m)
            out.append((m, routed_expert(m, cfg)))
    if "lm_head" not in seen:
        out.append(("lm_head", False))
    return out


def stored_quantized(out, module):
    return any(out.has(module + s) for s in (".weight_scale", ".weight_scale_inv", ".qweight"))


def vllm_excluded(module, entries):
    return any(module == e or module in e or fnmatch.fnmatch(module, e) for e in entries)


def transformers_excluded(module, entries):
    return any(e in module for e in entries)


def expected_scheme(fmt, calibrated):
    return {("fp8", True): "modelopt FP8", ("fp8", False): "fp8 dynamic",
            ("nvfp4", True): "modelopt NVFP4", ("nvfp4", False): "modelopt W4A16_NVFP4",
            ("fp8_block", True): "fp8 block", ("fp8_block", False): "fp8 block",
            ("int4", True): "gptq", ("int4", False): "gptq",
            ("none", True): "none", ("none", False): "none"}[(fmt, calibrated)]


FUSED = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "gate_proj": "gate_up",
         "up_proj": "gate_up", "w1": "gate_up", "w3": "gate_up", "q_a_proj": "qkv_a",
         "kv_a_proj_with_mqa": "qkv_a"}


def check_fused_scales(out, problems):
    """Members of one engine-fused linear carry equal scalar scales."""
    groups = {}
    for name in out.tensors:
        for suffix in ("weight_scale", "weight_scale_2", "input_scale"):
            if not name.endswith("." + suffix) or out.shape(name) != []:
                continue
            module = name[: -len(suffix) - 1]
            parent, _, leaf = module.rpartition(".")
            if leaf in FUSED:
                groups.setdefault((parent, FUSED[leaf], suffix), []).append(name)
    for (parent, kind, suffix), names in groups.items():
        values = {out.scalar_f32(n) for n in names}
        if len(values) > 1:
            problems.append("%s of the fused %s linear under '%s' differ: %s"
                            % (suffix, kind, parent, sorted(names)))


def check_kv(out, cfg, kv_cache, problems):
    """The FP8 KV-cache scales ModelOpt writes, present exactly when declared."""
    scales = [n for n in out.tensors if n.endswith(".k_scale") or n.endswith(".v_scale")]
    if not kv_cache:
        if scales:
            problems.append("KV-cache scales %s without --kv-cache" % scales[:3])
        return
    for layer in range(cfg["num_hidden_layers"]):
        for proj, s in (("k_proj", "k_scale"), ("v_proj", "v_scale")):
            name = "model.layers.%d.self_attn.%s.%s" % (layer, proj, s)
            v = out.scalar_f32(name) if out.has(name) else None
            if not (v is not None and math.isfinite(v) and v > 0):
                problems.append("'%s' must be a float32 scalar > 0, found %r" % (name, v))
    want = 2 * cfg["num_hidden_layers"]
    if len(scales) != want:
        problems.append("%d KV-cache scales, expected %d" % (len(scales), want))


NEVER_QUANTIZED = re.compile(r"(\.mlp\.gate|\.block_sparse_moe\.gate|shared_expert_gate|\.router|"
                             r"^lm_head)$")
# Left in bf16 by --quantize all-linear on purpose (docs/formats.md, "Dense linears"): Gated
# DeltaNet's projections (Qwen3-Next, Qwen3.5), which moequant cannot calibrate yet.
NOT_ALL_LINEAR = re.compile(r"\.linear_attn\.")


def check_all_linear(modules, out, cfg, problems):
    """--all-linear: every decoder linear but the router and shared-expert gates is quantized;
    the router and lm_head never are."""
    for name, _ in modules:
        never = bool(NEVER_QUANTIZED.search(name))
        m = re.match(r"model\.layers\.(\d+)\.", name)
        decoder = m is not None and int(m.group(1)) < cfg["num_hidden_layers"]
        if never and stored_quantized(out, name):
            problems.append("'%s' is stored quantized, but the router, its gates and lm_head "
                            "never are" % name)
        if decoder and not never and not NOT_ALL_LINEAR.search(name) and \
                not stored_quantized(out, name):
            problems.append("'%s' is stored unquantized under --quantize all-linear" % name)


def check(src, out, fmt, calibrated, problems, all_linear=False, kv_cache=False):
    scheme = expected_scheme(fmt, calibrated)
    q = out.config.get("quantization_config")
    hq_path = os.path.join(out.path, "hf_quant_config.json")
    hq = None
    if os.path.isfile(hq_path):
        with open(hq_path) as f:
            hq = json.load(f)
    if src is not None:
        for k in set(src.config) | set(out.config):
            if k != "quantization_config" and src.config.get(k) != out.config.get(k):
                problems.append("config.json key %r differs from the source's" % k)

    def keys_are(obj, want, where):
        if not isinstance(obj, dict) or sorted(obj) != sorted(want):
            problems.append("%s: keys %s, docs/formats.md gives %s"
                            % (where, sorted(obj) if isinstance(obj, dict) else obj, sorted(want)))
            return False
        return True

    readers = []  # (reader name, excluded(module) -> bool)
    static = False
    if scheme == "none":
        if q is not None or hq is not None:
            problems.append("format none must write no quantization_config and no "
                            "hf_quant_config.json")
        return
    if scheme.startswith("modelopt"):
        algo = scheme.split()[1]
        static = algo in ("FP8", "NVFP4")
        nvfp4 = "NVFP4" in algo
        want = ["quant_method", "quant_algo", "ignore", "exclude_modules", "config_groups",
                "producer"] + (["group_size"] if nvfp4 else []) + (
                    ["kv_cache_scheme", "kv_cache_quant_algo"] if kv_cache else [])
        if keys_are(q, want, "config.json quantization_config"):
            if q["quant_method"] != "modelopt" or q["quant_algo"] != algo:
                problems.append("quant_method/quant_algo %r/%r, expected modelopt/%s"
                                % (q["quant_method"], q["quant_algo"], algo))
            if nvfp4 and q["group_size"] != 16:
                problems.append("group_size %r, expected 16" % q["group_size"])
            if kv_cache and (q["kv_cache_scheme"] != {"dynamic": False, "num_bits": 8,
                                                      "type": "float"}
                             or q["kv_cache_quant_algo"] != "FP8"):
                problems.append("kv_cache_scheme %r / kv_cache_quant_algo %r: vLLM and SGLang "
                                "read an FP8 KV cache from {type float, num_bits 8} / 'FP8'"
                                % (q["kv_cache_scheme"], q["kv_cache_quant_algo"]))
            w = {"dynamic": False, "num_bits": 4 if nvfp4 else 8, "type": "float"}
            if nvfp4:
                w["group_size"] = 16
            group = {"weights": w, "targets": ["Linear"]}
            if static:
                group["input_activations"] = w
            if q["config_groups"] != {"group_0": group}:
                problems.append("config_groups %r, expected %r" % (q["config_groups"],
                                                                    {"group_0": group}))
            if q["exclude_modules"] != q["ignore"]:
                problems.append("exclude_modules differs from ignore")
            if not (isinstance(q["producer"], dict) and "name" in q["producer"]):
                problems.append("producer must name the producer")
            ignore = q["ignore"]
            readers.append(("vLLM/SGLang (ignore)", lambda m: vllm_excluded(m, ignore)))
        if hq is None:
            problems.append("hf_quant_config.json is missing (TensorRT-LLM reads it)")
        elif keys_are(hq, ["producer", "quantization"], "hf_quant_config.json"):
            hqq = hq["quantization"]
            want = ["quant_algo", "kv_cache_quant_algo", "exclude_modules"] + (
                ["group_size"] if nvfp4 else [])
            if keys_are(hqq, want, "hf_quant_config.json quantization"):
                if hqq["quant_algo"] != algo or \
                        hqq["kv_cache_quant_algo"] != ("FP8" if kv_cache else None):
                    problems.append("hf_quant_config.json quant_algo %r, kv_cache_quant_algo %r"
                                    % (hqq["quant_algo"], hqq["kv_cache_quant_algo"]))
                nested = hqq["exclude_modules"]
                readers.append(("TensorRT-LLM (exclude_modules)",
                                lambda m: vllm_excluded(m, nested)))
    elif scheme in ("fp8 dynamic", "fp8 block"):
        if hq is not None:
            problems.append("hf_quant_config.json must not exist for %s" % scheme)
        want = ["quant_method", "activation_scheme", "ignored_layers", "modules_to_not_convert"]
        if scheme == "fp8 block":
            want.append("weight_block_size")
        if keys_are(q, want, "config.json quantization_config"):
            if q["quant_method"] != "fp8" or q["activation_scheme"] != "dynamic":
                problems.append("quant_method/activation_scheme %r/%r, expected fp8/dynamic"
                                % (q["quant_method"], q["activation_scheme"]))
            if scheme == "fp8 block" and q["weight_block_size"] != [128, 128]:
                problems.append("weight_block_size %r" % q["weight_block_size"])
            if q["ignored_layers"] != q["modules_to_not_convert"]:
                problems.append("ignored_layers differs from modules_to_not_convert")
            ign, mtnc = q["ignored_layers"], q["modules_to_not_convert"]
            readers.append(("vLLM (ignored_layers)", lambda m: vllm_excluded(m, ign)))
            readers.append(("transformers (modules_to_not_convert)",
                            lambda m: transformers_excluded(m, mtnc)))
    else:  # gptq
        if hq is not None:
            problems.append("hf_quant_config.json must not exist for gptq")
        want = ["quant_method", "bits", "group_size", "desc_act", "sym", "lm_head",
                "checkpoint_format", "modules_in_block_to_quantize", "dynamic"]
        if keys_are(q, want, "config.json quantization_config"):
            fixed = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False,
                     "sym": True, "lm_head": False, "checkpoint_format": "gptq"}
            for k, v in fixed.items():
                if q[k] != v:
                    problems.append("gptq %s is %r, expected %r" % (k, q[k], v))
            regs = [re.compile(k[2:]) for k in q["dynamic"] if k.startswith("-:")]
            # vLLM quantizes a linear only when an entry of modules_in_block_to_quantize (a list,
            # or GPTQModel's list of lists, flattened) is a substring of its name.
            block = []
            for e in q["modules_in_block_to_quantize"]:
                block += e if isinstance(e, list) else [e]
            readers.append(("vLLM/GPTQModel (dynamic, modules_in_block_to_quantize)",
                            lambda m: any(r.match(m) for r in regs) or
                            not any(e in m for e in block)))
    check_kv(out, out.config, kv_cache, problems)
    check_fused_scales(out, problems)
    if not readers:
        return

    layers = {}  # MoE prefix -> set of stored states of its experts
    modules = source_modules(src) if src is not None else output_modules(out)
    if all_linear:
        check_all_linear(modules, out, out.config, problems)
    for name, routed in modules:
        if routed:
            layers.setdefault(EXPERT_RE.match(name).group(1), set()).add(
                stored_quantized(out, name))
    for prefix, states in layers.items():
        if len(states) == 1:
            modules.append((prefix, False))  # the fused MoE layer vLLM queries
    for name, _ in modules:
        stored = (layers[name] == {True}) if name in layers else stored_quantized(out, name)
        for reader, excluded in readers:
            if stored and excluded(name):
                problems.append("%s excludes '%s', which is stored quantized" % (reader, name))
            if not stored and not excluded(name):
                problems.append("%s reads '%s' as quantized, but it is stored unquantized"
                                % (reader, name))
        if name in layers or not stored or fmt == "int4":
            continue
        scale = out.scalar_f32(name + ".input_scale") if out.has(name + ".input_scale") else None
        if static and not (scale is not None and math.isfinite(scale) and scale > 0):
            problems.append("'%s' needs an input_scale (static activations), found %r"
                            % (name, scale))
        if not static and out.has(name + ".input_scale"):
            problems.append("'%s' carries an input_scale but the scheme is dynamic" % name)
        m = EXPERT_RE.match(name)
        if static and m and m.group(3) in ("gate_proj", "w1"):
            up = "%s.%s.%s" % (m.group(1), m.group(2), "up_proj" if m.group(3) == "gate_proj"
                               else "w3")
            if out.has(up + ".input_scale") and \
                    out.scalar_f32(up + ".input_scale") != scale:
                problems.append("gate and up of '%s.%s' have different input_scale"
                                % (m.group(1), m.group(2)))
    return len(modules)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", help="the source folder (default: read the modules off the "
                                     "output)")
    ap.add_argument("--quantized", required=True)
    ap.add_argument("--format", required=True,
                    choices=("none", "fp8", "nvfp4", "fp8_block", "int4"))
    ap.add_argument("--calibrated", action="store_true",
                    help="the export was calibrated with data (static-activation schemes)")
    ap.add_argument("--all-linear", action="store_true",
                    help="the export quantized every linear (--quantize all-linear)")
    ap.add_argument("--kv-cache", action="store_true",
                    help="the export carries FP8 KV-cache scales (--kv-cache fp8)")
    args = ap.parse_args(argv)
    problems = []
    src = Folder(args.source) if args.source else None
    n = check(src, Folder(args.quantized), args.format, args.calibrated, problems,
              args.all_linear, args.kv_cache)
    for p in problems[:40]:
        print("PROBLEM: " + p)
    if problems:
        print("engine_schema: FAILED, %d problem(s) (%s, %s)" % (len(problems), args.quantized,
                                                                 args.format))
        return 1
    print("engine_schema: OK, %s modules read as stored (%s, %s%s)"
          % (n if n is not None else 0, args.quantized, args.format,
             ", calibrated" if args.calibrated else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
