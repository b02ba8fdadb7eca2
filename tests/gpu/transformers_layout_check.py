#!/usr/bin/env python3
"""On a machine with transformers (and a GPU for the MXFP4 kernels' alternative): the layouts
moequant's test scripts write, read by transformers itself.

1. The MXFP4 GPT-OSS source that tests/data/make_mxfp4_source.py writes from the gpt_oss
   fixture, loaded with Mxfp4Config(dequantize=True), gives in float32 the logits that the bf16
   checkpoint it encodes gives: the reference that moequant's MXFP4 reader (which exports both
   byte for byte alike, tests/export/mxfp4_source_test.py) is held to. Both logit sets are saved
   (--out) so that they can be committed beside the fixture.
2. The Qwen3.5 release layout that tests/data/make_qwen3_5_release.py writes from the
   qwen3_5_moe_text fixture (the text model under model.language_model.*, experts fused
   [E, 2I, H] gate rows first), loaded by transformers as Qwen3_5MoeForConditionalGeneration,
   gives the fixture's own logits on its tokens: the fused layout and the wrapper names are what
   transformers reads.

usage: transformers_layout_check.py --fixtures tests/data/hf [--device cuda] [--out DIR]
Exits 1 when a check fails; prints the largest logit difference of each.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")


def logits_of(model, ids, device):
    with torch.no_grad():
        return model.to(device).eval()(torch.tensor(ids, device=device)).logits.float().cpu().numpy()


def check_mxfp4(fixtures, tmp, device, out):
    from transformers import AutoModelForCausalLM, Mxfp4Config
    src = os.path.join(fixtures, "gpt_oss")
    mx, bf = os.path.join(tmp, "mxfp4"), os.path.join(tmp, "bf16")
    subprocess.run([sys.executable, os.path.join(DATA, "make_mxfp4_source.py"), "--source", src,
                    "--mxfp4-out", mx, "--bf16-out", bf], check=True)
    ids = np.load(os.path.join(src, "logit_ids.npy"))
    mx_model = AutoModelForCausalLM.from_pretrained(
        mx, dtype=torch.float32, quantization_config=Mxfp4Config(dequantize=True))
    bf_model = AutoModelForCausalLM.from_pretrained(bf, dtype=torch.float32)
    # Where a difference comes from: the loaded parameters (dtype, values) of the two models.
    mx_params, bf_params = dict(mx_model.named_parameters()), dict(bf_model.named_parameters())
    print("mxfp4 model parameter dtypes:", sorted({str(p.dtype) for p in mx_params.values()}),
          "| bf16 model:", sorted({str(p.dtype) for p in bf_params.values()}))
    print("parameters only in one:", sorted(set(mx_params) ^ set(bf_params))[:8])
    diffs = []
    for name in sorted(set(mx_params) & set(bf_params)):
        x, y = mx_params[name].detach().float(), bf_params[name].detach().float()
        if x.shape != y.shape:
            diffs.append((float("inf"), name, f"shape {tuple(x.shape)} vs {tuple(y.shape)}"))
        else:
            diffs.append((float((x - y).abs().max()), name, ""))
    for d, name, note in sorted(diffs, reverse=True)[:6]:
        print(f"  parameter {name}: max |mxfp4 - bf16| {d:.3g} {note}")
    print("experts class:", type(mx_model.model.layers[0].mlp.experts).__name__, "vs",
          type(bf_model.model.layers[0].mlp.experts).__name__)
    # transformers keeps the dequantized experts in bf16 whatever dtype was asked for, so its
    # expert GEMMs run in bf16 (1.3e-3 off the float32 model on this fixture) although every
    # parameter equals the bf16 model's: upcast, the float32 forward of the same weights.
    mx_model = mx_model.float()
    a = logits_of(mx_model, ids, device)
    b = logits_of(bf_model, ids, device)
    diff = float(np.abs(a - b).max())
    scale = float(np.abs(b).max())
    print(f"mxfp4 (dequantize=True) vs its bf16: max |diff| {diff:.3g} of max |logit| {scale:.3g}")
    if out:
        os.makedirs(out, exist_ok=True)
        np.save(os.path.join(out, "gpt_oss_mxfp4_logits_f32.npy"), a)
        np.save(os.path.join(out, "gpt_oss_mxfp4_logit_ids.npy"), ids)
    return diff <= 1e-5 * max(scale, 1.0)


def check_qwen3_5_release(fixtures, tmp, device):
    from transformers import AutoModelForImageTextToText
    src = os.path.join(fixtures, "qwen3_5_moe_text")
    rel = os.path.join(tmp, "qwen3_5_release")
    subprocess.run([sys.executable, os.path.join(DATA, "make_qwen3_5_release.py"), src, rel],
                   check=True)
    ids = np.load(os.path.join(src, "logit_ids.npy"))
    ref = np.load(os.path.join(src, "logits_f32.npy"))
    model = AutoModelForImageTextToText.from_pretrained(rel, dtype=torch.float32)
    got = logits_of(model, ids, device)
    diff = float(np.abs(got - ref).max())
    scale = float(np.abs(ref).max())
    print(f"qwen3_5 release layout vs the fixture's logits: max |diff| {diff:.3g} of {scale:.3g}")
    return diff <= 1e-5 * max(scale, 1.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out")
    args = ap.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="mq-layout-check-") as tmp:
        ok = check_mxfp4(args.fixtures, tmp, args.device, args.out) and ok
        ok = check_qwen3_5_release(args.fixtures, tmp, args.device) and ok
    print("transformers_layout_check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
