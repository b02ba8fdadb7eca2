#!/usr/bin/env python3
"""Loads a moequant fp8_block export in Hugging Face transformers (a client nobody here wrote) and
compares its logits with the bf16 source model's on the same tokens.

usage: hf_client_check.py SOURCE_DIR QUANTIZED_DIR [--tokens N] [--device cuda] [--as-declared]
With --as-declared the export is loaded with nothing but its own config.json (as a user's
from_pretrained() would), instead of FineGrainedFP8Config(dequantize=True): whether transformers
reads that checkpoint right, misreads it, or refuses it.
Prints max / mean absolute logit difference and top-1 agreement; exits 1 when the quantized
model does not load, produces non-finite logits, or agrees on fewer than --min-top1 of tokens.
"""
import argparse
import sys

import torch
from transformers import AutoModelForCausalLM, FineGrainedFP8Config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("quantized")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--min-top1", type=float, default=0.9)
    ap.add_argument("--as-declared", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    ref = AutoModelForCausalLM.from_pretrained(args.source, dtype=torch.bfloat16).to(args.device).eval()
    if args.as_declared:
        try:
            quant = AutoModelForCausalLM.from_pretrained(args.quantized, dtype=torch.bfloat16)
            quant = quant.to(args.device).eval()
        except Exception as e:  # refusing is a fine outcome: only a silent misread is not
            print(f"{args.quantized}: transformers refuses it as declared: {type(e).__name__}: "
                  f"{str(e)[:300]}")
            return 2
    else:
        quant = AutoModelForCausalLM.from_pretrained(
            args.quantized, dtype=torch.bfloat16,
            quantization_config=FineGrainedFP8Config(dequantize=True)).to(args.device).eval()
    vocab = ref.config.vocab_size
    ids = torch.randint(0, vocab, (8, args.tokens // 8), device=args.device)
    with torch.no_grad():
        a = ref(ids).logits.float()
        b = quant(ids).logits.float()
    diff = (a - b).abs()
    top1 = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    finite = bool(torch.isfinite(b).all())
    print(f"{args.quantized}: logits max|diff| {diff.max().item():.5f}, mean|diff| "
          f"{diff.mean().item():.5f} (ref mean|logit| {a.abs().mean().item():.5f}), "
          f"top-1 agreement {top1:.4f} over {ids.numel()} tokens, finite {finite}")
    return 0 if finite and top1 >= args.min_top1 else 1


if __name__ == "__main__":
    sys.exit(main())
