#!/usr/bin/env python3
"""The fused and hybrid families end to end through the tool.

- Qwen3.5's release layout (tests/data/make_qwen3_5_release.py: the text model under
  model.language_model.* with fused [E, 2I, H] experts, a vision tower and an MTP head) exports,
  for every format, the bytes the per-expert text fixture exports, under the wrapper's names; the
  vision and MTP tensors are carried over bit for bit; config.json keeps the wrapper.
- Calibration with data of a hybrid family (Gated DeltaNet layers) is refused by name.
- Bad inputs fail with a named error, a non-zero exit and no output: a wrapper folder whose text
  model is missing (no text_config; tensors not under model.language_model.*), a fused expert
  tensor with the wrong expert count.

Usage: fused_families_test.py --tool BIN --fixtures DIR
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_RELEASE = os.path.join(HERE, "..", "data", "make_qwen3_5_release.py")
PARTIAL = {"fp8_block": ["--allow-partial-blocks"]}


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    return p.returncode, p.stdout


def read_folder(path):
    """name -> (dtype, shape, bytes) over every safetensors file of a folder."""
    out = {}
    for fn in sorted(os.listdir(path)):
        if not fn.endswith(".safetensors"):
            continue
        with open(os.path.join(path, fn), "rb") as f:
            blob = f.read()
        (n,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + n])
        header.pop("__metadata__", None)
        for k, v in header.items():
            a, b = v["data_offsets"]
            out[k] = (v["dtype"], v["shape"], blob[8 + n + a:8 + n + b])
    return out


def quantize(tool, model, fmt, out, extra=()):
    return run([tool, "quantize", "--model", model, "--format", fmt] + PARTIAL.get(fmt, []) +
               ["--out", out, "-q", "--no-table"] + list(extra))


def expect_refused(tool, model, fmt, out, needles, extra=()):
    rc, log = quantize(tool, model, fmt, out, extra)
    problems = []
    if rc == 0:
        problems.append("exit 0")
    for n in needles:
        if n not in log:
            problems.append("no %r in the message" % n)
    if os.path.exists(out):
        problems.append("an output folder was left")
    if len([l for l in log.strip().splitlines() if "error" in l]) != 1:
        problems.append("not one error line")
    return ["refusal %s: %s\n%s" % (os.path.basename(model), "; ".join(problems), log)] if problems else []


def release_matches_text_fixture(tool, fixtures, tmp):
    failures = []
    text = os.path.join(fixtures, "qwen3_5_moe_text")
    release = os.path.join(tmp, "qwen3_5_release")
    subprocess.run([sys.executable, MAKE_RELEASE, text, release], check=True)
    source = read_folder(release)
    for fmt in ("fp8", "nvfp4", "fp8_block", "int4"):
        a, b = os.path.join(tmp, "text-" + fmt), os.path.join(tmp, "release-" + fmt)
        for model, out in ((text, a), (release, b)):
            rc, log = quantize(tool, model, fmt, out)
            if rc != 0:
                return ["quantize %s %s failed:\n%s" % (model, fmt, log)]
        ta, tb = read_folder(a), read_folder(b)
        renamed = {("model.language_model." + k[len("model."):] if k.startswith("model.") else k): v
                   for k, v in ta.items()}
        carried = {k for k in tb if k.startswith("model.visual.") or k.startswith("mtp.")}
        if set(renamed) != set(tb) - carried:
            failures.append("%s: tensor names differ: %s" % (
                fmt, sorted(set(renamed) ^ (set(tb) - carried))[:6]))
            continue
        differ = [k for k in renamed if renamed[k] != tb[k]]
        if differ:
            failures.append("%s: %d tensor(s) differ from the text fixture's export, e.g. %s"
                            % (fmt, len(differ), differ[0]))
        if carried != {"model.visual.blocks.0.attn.qkv.weight", "mtp.norm.weight"} or \
                any(tb[k] != source[k] for k in carried):
            failures.append("%s: the vision tower / MTP head was not carried over untouched" % fmt)
        with open(os.path.join(b, "config.json")) as f:
            cfg = json.load(f)
        if cfg.get("model_type") != "qwen3_5_moe" or "text_config" not in cfg:
            failures.append("%s: config.json lost the wrapper" % fmt)
        # Listed by name (ModelOpt's and fp8's lists) or as an escaped regex (GPTQ's dynamic).
        excluded = json.dumps(cfg.get("quantization_config", {}))
        if "visual" not in excluded:
            failures.append("%s: the vision linear is not in the exclusion lists" % fmt)
        print("qwen3_5 release %s: %d tensors as the text fixture's export" % (fmt, len(renamed)))
    # Bad wrappers: no text_config; the text model's tensors not under model.language_model.*
    bad = os.path.join(tmp, "bad-no-text-config")
    shutil.copytree(release, bad)
    with open(os.path.join(bad, "config.json")) as f:
        cfg = json.load(f)
    del cfg["text_config"]
    with open(os.path.join(bad, "config.json"), "w") as f:
        json.dump(cfg, f)
    failures += expect_refused(tool, bad, "fp8", os.path.join(tmp, "out-bad1"),
                               ["'text_config', which is missing"])
    bad = os.path.join(tmp, "bad-no-language-model")
    shutil.copytree(text, bad)
    with open(os.path.join(release, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(bad, "config.json"), "w") as f:
        json.dump(cfg, f)
    failures += expect_refused(tool, bad, "fp8", os.path.join(tmp, "out-bad2"),
                               ["'model.language_model.layers.0.input_layernorm.weight'",
                                "is missing"])
    return failures


def wrong_expert_count(tool, fixtures, tmp):
    bad = os.path.join(tmp, "llama4-3-experts")
    shutil.copytree(os.path.join(fixtures, "llama4_text"), bad)
    path = os.path.join(bad, "model.safetensors")
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    name = "model.layers.1.feed_forward.experts.gate_up_proj"
    shape = header[name]["shape"]
    a, b = header[name]["data_offsets"]
    header[name]["shape"] = [3] + shape[1:]  # one expert fewer: the offsets shrink by one matrix
    cut = (b - a) // shape[0]
    for k, v in header.items():
        if k != "__metadata__" and v["data_offsets"][0] >= b:
            v["data_offsets"] = [v["data_offsets"][0] - cut, v["data_offsets"][1] - cut]
    header[name]["data_offsets"] = [a, b - cut]
    data = blob[8 + n:]
    data = data[:b - cut] + data[b:]
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    return expect_refused(tool, bad, "nvfp4", os.path.join(tmp, "out-experts"),
                          ["fused expert tensor '%s' holds 3 experts" % name, "config.json has 4"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    failures = []
    with tempfile.TemporaryDirectory(prefix="mq-fused-") as tmp:
        failures += release_matches_text_fixture(args.tool, args.fixtures, tmp)
        failures += wrong_expert_count(args.tool, args.fixtures, tmp)
        for model in ("qwen3_next", "qwen3_5_moe_text"):
            failures += expect_refused(
                args.tool, os.path.join(args.fixtures, model), "fp8",
                os.path.join(tmp, "out-calib-" + model),
                ["calibration with data", "Gated DeltaNet linear attention (linear_attention layers"],
                ["--calib-data", "random"])
    for f in failures:
        print("FAILED:", f)
    print("fused_families_test: %s" % ("FAILED" if failures else "OK"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
