#!/usr/bin/env python3
"""Every export of one model, read the way serving engines read it (engine_schema.py).

Usage: engine_schema_test.py --tool BIN --model DIR [--calib-data FILE|random]

For each format (fp8, nvfp4, fp8_block, int4): a plain export, one with the experts of the last
MoE layer excluded (every format; int4 also with single experts left out), --quantize all-linear
(with one q_proj excluded, which takes its q/k/v group out), and, with --calib-data, calibrated
exports (static activation scales; all-linear; FP8 KV-cache scales for fp8 and nvfp4 on models
with grouped-query attention): each passes engine_schema.py. An
--exclude that leaves a layer partly quantized is refused for every format but int4, with a clear
error and no output folder.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


# The fixtures' experts (intermediate 32) are not whole 128-blocks: written on purpose.
PARTIAL = {"fp8_block": ["--allow-partial-blocks"]}


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def first_attention_q(model, cfg):
    """The q projection of the first softmax-attention layer (a hybrid model's first layers may
    be Gated DeltaNet), by the names in the source's index or single shard."""
    leaf = "q_b_proj" if cfg.get("q_lora_rank") else "q_proj"
    names = set()
    index = os.path.join(model, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as f:
            names = set(json.load(f)["weight_map"])
    else:
        with open(os.path.join(model, "model.safetensors"), "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            names = set(json.loads(f.read(n)))
    found = sorted((int(m.group(1)), m.group(0)[:-len(".weight")]) for m in
                   (re.match(r".*?layers\.(\d+)\.self_attn\.%s\.weight$" % leaf, k) for k in names) if m)
    if not found:
        sys.exit("engine_schema_test: %s has no self_attn.%s" % (model, leaf))
    return found[0][1]


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
        mla = cfg.get("kv_lora_rank") is not None
        calib = ["--calib-data", args.calib_data, "--calib-seq-len", "16"] if args.calib_data else []
        one_q = first_attention_q(args.model, cfg)
        for fmt in ("fp8", "nvfp4", "fp8_block", "int4"):
            cases.append((fmt, [], False))
            cases.append((fmt, ["--exclude", whole_layer], False))
            cases.append((fmt, ["--quantize", "all-linear"], False))
            cases.append((fmt, ["--quantize", "all-linear", "--exclude", one_q], False))
            if calib:
                cases.append((fmt, calib, True))
                cases.append((fmt, calib + ["--quantize", "all-linear"], True))
                if fmt in ("nvfp4", "int4"):  # GPTQ changes the codes, never the schema
                    gptq = ["--algorithm", "gptq", "--gptq-min-tokens", "1"]
                    cases.append((fmt, calib + gptq, True))
                    cases.append((fmt, calib + gptq + ["--quantize", "all-linear"], True))
                if fmt in ("fp8", "nvfp4") and not mla:
                    cases.append((fmt, calib + ["--kv-cache", "fp8"], True))
                    cases.append((fmt, calib + ["--quantize", "all-linear", "--kv-cache", "fp8"],
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
            all_linear = "all-linear" in extra and "--exclude" not in extra
            cmd = [sys.executable, os.path.join(HERE, "engine_schema.py"), "--source", args.model,
                   "--quantized", out, "--format", fmt] + (["--calibrated"] if calibrated else []) + (
                       ["--all-linear"] if all_linear else []) + (
                       ["--kv-cache"] if "--kv-cache" in extra else [])
            rc, log = run(cmd)
            print("%s: %s" % (label, log.strip().splitlines()[-1]))
            if rc != 0:
                print(log)
                failures += 1
            if "all-linear" in extra and "--exclude" in extra and not mla:
                # Excluding q_proj takes its fused q/k/v group out (engines load one qkv_proj).
                rc2, listing = run([args.tool, "inspect", out])
                # inspect lists a quantized module by its name, a plain weight by "....weight".
                if "model.layers.0.self_attn.k_proj " in listing:
                    print("FAILED: %s: k_proj is quantized though q_proj was excluded:\n%s"
                          % (label, listing))
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
