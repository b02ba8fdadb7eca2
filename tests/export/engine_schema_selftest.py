#!/usr/bin/env python3
"""engine_schema.py checks itself: a correct export passes, and every way of getting the config
wrong that misleads an engine is caught, each with its message.

Usage: engine_schema_selftest.py --tool BIN --model DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(src, out, fmt, *extra):
    p = subprocess.run([sys.executable, os.path.join(HERE, "engine_schema.py"), "--source", src,
                        "--quantized", out, "--format", fmt] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def expect(label, want_rc, src, out, fmt, *extra, must_say=None):
    rc, text = check(src, out, fmt, *extra)
    ok = rc == want_rc and (must_say is None or must_say in text)
    print("%s  %s" % ("ok  " if ok else "FAIL", label))
    if not ok:
        failures.append(label)
        print("    " + text.replace("\n", "\n    "))


def mutated(base, tmp, name, edit_config=None, edit_hq=None, remove=None):
    path = os.path.join(tmp, name)
    shutil.copytree(base, path)
    for fname, edit in (("config.json", edit_config), ("hf_quant_config.json", edit_hq)):
        if edit is None:
            continue
        p = os.path.join(path, fname)
        with open(p) as f:
            j = json.load(f)
        edit(j)
        with open(p, "w") as f:
            json.dump(j, f)
    if remove:
        os.remove(os.path.join(path, remove))
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mq-engine-schema-selftest-")
    try:
        outs = {}
        for fmt in ("nvfp4", "fp8", "int4"):
            outs[fmt] = os.path.join(tmp, fmt)
            subprocess.run([args.tool, "quantize", "--model", args.model, "--format", fmt, "--allow-partial-blocks",
                            "--out", outs[fmt], "-q"], check=True)
        src, nv, fp8, int4 = args.model, outs["nvfp4"], outs["fp8"], outs["int4"]
        expect("the tool's nvfp4 export passes", 0, src, nv, "nvfp4", must_say="OK")
        expect("...but not as a calibrated (W4A4) one", 1, src, nv, "nvfp4", "--calibrated",
               must_say="quant_algo")

        def q(f):
            return lambda j: f(j["quantization_config"])
        expect("exclusions under exclude_modules only (the old flat form) are caught", 1, src,
               mutated(nv, tmp, "no-ignore", q(lambda c: c.pop("ignore"))), "nvfp4",
               must_say="keys")
        expect("an empty ignore list (attention read as quantized) is caught", 1, src,
               mutated(nv, tmp, "empty-ignore", q(lambda c: c.update(ignore=[]))), "nvfp4",
               must_say="reads 'model.layers.0.self_attn.q_proj' as quantized")
        expect("an over-broad glob that excludes the experts is caught", 1, src,
               mutated(nv, tmp, "broad", q(lambda c: c["ignore"].append("model.layers.*"))),
               "nvfp4", must_say="which is stored quantized")
        expect("a kv_cache_scheme key is caught", 1, src,
               mutated(nv, tmp, "kv", q(lambda c: c.update(kv_cache_scheme={}))), "nvfp4",
               must_say="keys")
        expect("W4A4 declared without input scales is caught", 1, src,
               mutated(nv, tmp, "w4a4", q(lambda c: c.update(quant_algo="NVFP4")),
                       lambda h: h["quantization"].update(quant_algo="NVFP4")),
               "nvfp4", "--calibrated", must_say="needs an input_scale")
        expect("a missing hf_quant_config.json is caught", 1, src,
               mutated(nv, tmp, "nohq", remove="hf_quant_config.json"), "nvfp4",
               must_say="hf_quant_config.json is missing")
        expect("a different nested exclusion list is caught", 1, src,
               mutated(nv, tmp, "nested", edit_hq=lambda h: h["quantization"].update(
                   exclude_modules=["lm_head"])), "nvfp4", must_say="TensorRT-LLM")
        expect("the tool's fp8 (weights-only) export passes", 0, src, fp8, "fp8")
        expect("fp8 with the list under modules_to_not_convert only is caught", 1, src,
               mutated(fp8, tmp, "fp8-ign", q(lambda c: c.update(ignored_layers=[]))), "fp8",
               must_say="vLLM (ignored_layers)")
        expect("fp8 declared as ModelOpt static FP8 is caught", 1, src, fp8, "fp8",
               "--calibrated", must_say="keys")
        expect("the tool's int4 export passes", 0, src, int4, "int4")
        expect("int4 without its negative regexes, with a block list matching every module, "
               "is caught", 1, src,
               mutated(int4, tmp, "int4-dyn", q(lambda c: c.update(
                   dynamic={}, modules_in_block_to_quantize=["model"]))), "int4",
               must_say="reads 'model.layers.0.mlp.gate' as quantized")
        expect("int4 whose block list misses the experts is caught", 1, src,
               mutated(int4, tmp, "int4-block", q(lambda c: c.update(
                   modules_in_block_to_quantize=["self_attn"]))), "int4",
               must_say="excludes 'model.layers.0.mlp.experts.0.gate_proj'")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d self-test failure(s): %s" % (len(failures), ", ".join(failures)))
        return 1
    print("all engine_schema self-tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
