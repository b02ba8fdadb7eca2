#!/usr/bin/env python3
"""Writes expected_<name>.json: the token ids Hugging Face `tokenizers` gives for every sample of
corpus.jsonl, the reference the C++ tokenizer test (tests/unit/tokenizer) compares against.

    bash tests/unit/tokenizer/fetch_tokenizers.sh /tmp/tok
    python3 tests/data/tokenizer/make_expected.py \
        qwen3=/tmp/tok/qwen3/tokenizer.json llama2=/tmp/tok/llama2/tokenizer.json

Each id list is Tokenizer.from_file(path).encode(text).ids: add_special_tokens=True (the default),
so the post-processor's special tokens are in. Needs only the `tokenizers` package.
"""
import argparse
import hashlib
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


def read_corpus(path):
    samples = []
    with open(path, encoding="utf-8", newline="\n") as f:
        for number, line in enumerate(f.read().split("\n"), start=1):
            if line.strip():
                samples.append(dict(line=number, **json.loads(line)))
    return samples


def dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tokenizers", nargs="+", metavar="NAME=tokenizer.json")
    parser.add_argument("--corpus", default=os.path.join(HERE, "corpus.jsonl"))
    parser.add_argument("--out-dir", default=HERE)
    args = parser.parse_args()

    corpus = read_corpus(args.corpus)
    for spec in args.tokenizers:
        name, sep, path = spec.partition("=")
        if not sep:
            sys.exit(f"make_expected.py: expected NAME=tokenizer.json, got {spec!r}")
        with open(path, "rb") as f:
            sha256 = hashlib.sha256(f.read()).hexdigest()
        tok = Tokenizer.from_file(path)
        header = {
            "reference": "hf-tokenizers",
            "generator": f"tokenizers {tokenizers.__version__} (Hugging Face)",
            "tokenizer": name,
            "tokenizer_sha256": sha256,
            "corpus": os.path.basename(args.corpus),
            "add_special_tokens": True,
            "skipped_lines": [],
        }
        samples = [{"line": s["line"], "text": s["text"], "ids": tok.encode(s["text"]).ids}
                   for s in corpus]
        target = os.path.join(args.out_dir, f"expected_{name}.json")
        with open(target, "w", encoding="utf-8", newline="\n") as out:
            out.write("{\n")
            for key, value in header.items():
                out.write(f"  {dumps(key)}: {dumps(value)},\n")
            out.write('  "samples": [\n')
            out.write(",\n".join("    " + dumps(s) for s in samples))
            out.write("\n  ]\n}\n")
        print(f"{target}: {len(samples)} samples", file=sys.stderr)


if __name__ == "__main__":
    main()
