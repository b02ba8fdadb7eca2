#!/usr/bin/env python3
"""transformers' logits for an FP8 block source (DeepSeek-V3's release format), the reference for
moequant's reading of such sources. Run on the GPU machine (transformers 5.17 there).

Usage: transformers_fp8_reference.py --model tests/data/hf/deepseek_v3_fp8 --out DIR

Loads the folder with FineGrainedFP8Config(dequantize=True) (transformers dequantizes every
F8_E4M3 weight with its weight_scale_inv), once in bfloat16 (what DeepSeek's fp8_cast_bf16.py
gives: the dequantized weights rounded to bf16) and once in float32, runs each in float32 on the
folder's logit_ids.npy and writes logits_f32.npy (the bf16 load) and logits_f32_fp32_load.npy.
"""
import argparse
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM, FineGrainedFP8Config


def logits(model_dir, ids, dtype):
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, quantization_config=FineGrainedFP8Config(dequantize=True), dtype=dtype)
    model = model.float().eval()
    with torch.no_grad():
        return model(torch.from_numpy(ids)).logits.float().numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    ids = np.load(os.path.join(args.model, "logit_ids.npy"))
    os.makedirs(args.out, exist_ok=True)
    bf16 = logits(args.model, ids, torch.bfloat16)
    f32 = logits(args.model, ids, torch.float32)
    np.save(os.path.join(args.out, "logits_f32.npy"), bf16.astype(np.float32))
    np.save(os.path.join(args.out, "logits_f32_fp32_load.npy"), f32.astype(np.float32))
    print("fp8 reference: logits %s, max |logit| %.4g, bf16-load vs fp32-load max diff %.3g"
          % (bf16.shape, np.abs(bf16).max(), np.abs(bf16 - f32).max()))


if __name__ == "__main__":
    main()
