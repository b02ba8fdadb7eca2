#!/usr/bin/env python3
"""End-to-end tests of the `moequant` binary, run as a user would run it.

Usage: tool_test.py --bin BUILT_BINARY --fixtures FIXTURES_DIR [--mpiexec "CMD ..."] CASE

CASE is a test_* function name without the prefix, or roundtrip:MODEL:FORMAT. Every case works
in a fresh temporary folder; corrupt inputs are built from a copy of a fixture (the fixtures are
never modified). Python standard library only.
"""

import argparse
import json
import re
import os
import shlex
import shutil
import struct
import signal
import socket
import subprocess
import sys
import tempfile
import time

FORMATS = ["none", "fp8", "nvfp4", "fp8_block", "int4"]


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


class Ctx:
    def __init__(self, binary, fixtures, mpiexec, tmp):
        self.bin = binary
        self.fixtures = fixtures
        self.mpiexec = mpiexec
        self.tmp = tmp

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def fixture(self, name):
        path = os.path.join(self.fixtures, name)
        check(os.path.isfile(os.path.join(path, "config.json")),
              f"fixture {path} not found (expected tests/data/hf in the repository)")
        return path

    def copy_fixture(self, name, dest="model"):
        out = self.path(dest)
        shutil.copytree(self.fixture(name), out)
        return out

    def run(self, *args, launcher=None, timeout=300, env=None, preexec_fn=None):
        cmd = (launcher or []) + [self.bin] + [str(a) for a in args]
        print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.tmp,
                              env=env, preexec_fn=preexec_fn)
        if proc.stdout:
            print(proc.stdout.rstrip())
        if proc.stderr:
            print("[stderr]\n" + proc.stderr.rstrip())
        print(f"[exit {proc.returncode}]", flush=True)
        return proc

    def ok(self, *args, launcher=None):
        proc = self.run(*args, launcher=launcher)
        check(proc.returncode == 0, f"expected success, got exit code {proc.returncode}")
        return proc

    def start(self, *args, launcher=None, env=None):
        """Starts the tool without waiting; finish(p) collects it like run()."""
        cmd = (launcher or []) + [self.bin] + [str(a) for a in args]
        print("$ " + " ".join(shlex.quote(c) for c in cmd) + " &", flush=True)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=self.tmp, env=env)


def finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    proc.stdout_text, proc.stderr_text = out, err
    if out:
        print(out.rstrip())
    if err:
        print("[stderr]\n" + err.rstrip())
    print(f"[exit {proc.returncode}]", flush=True)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# ---- deterministic pauses (common/test_pause.h) ------------------------------------------------

def pause_env(point, folder):
    """The environment that makes the tool wait at `point` until folder/release exists."""
    os.makedirs(folder, exist_ok=True)
    env = dict(os.environ)
    env["MOEQUANT_TEST_PAUSE"] = f"{point}:{folder}"
    return env


def wait_for_pause(folder, point, count=1, procs=(), timeout=60):
    """Waits until `count` processes reached `point`; returns their pids."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        reached = [int(f.rsplit(".", 1)[1]) for f in os.listdir(folder)
                   if f.startswith(point + ".")]
        if len(reached) >= count:
            return reached
        for p in procs:
            check(p.poll() is None or len(reached) >= count,
                  f"the run ended (exit {p.returncode}) before reaching '{point}'")
        time.sleep(0.01)
    raise Failure(f"no run reached '{point}' within {timeout} s")


def release(folder):
    with open(os.path.join(folder, "release"), "w"):
        pass


# ---- assertions on failures ---------------------------------------------------------------

def expect_error(proc, *needles):
    """Non-zero exit, one clear error line on stderr that names every needle."""
    check(proc.returncode != 0, "expected a non-zero exit code, got 0")
    check(proc.returncode not in (-11, -6, 134, 139),
          f"the tool crashed (exit {proc.returncode}) instead of reporting an error")
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    # "moequant: error: ..." (main), or "moequant: rank R: ..." (an error that ended the job).
    errors = [l for l in lines if l.startswith("moequant: ")]
    check(len(errors) == 1, f"expected exactly one 'moequant: ...' error line on stderr, got {lines}")
    for needle in needles:
        check(needle in errors[0], f"error line does not name {needle!r}: {errors[0]!r}")
    return errors[0]


def expect_no_output(out):
    """Nothing that looks like a finished checkpoint at `out`, and no partial folder left."""
    for name in ("config.json", "model.safetensors.index.json"):
        check(not os.path.exists(os.path.join(out, name)),
              f"a failed run left {os.path.join(out, name)}")
    partial = out.rstrip("/") + ".moequant-partial"
    check(not os.path.exists(partial), f"a failed run left the partial folder {partial}")


# ---- safetensors editing (for building bad inputs) ----------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    data = blob[8 + n:]
    tensors = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        tensors[name] = (info["dtype"], list(info["shape"]), bytearray(data[b:e]))
    return tensors, meta


def write_safetensors(path, tensors, meta=None):
    header = {}
    if meta:
        header["__metadata__"] = meta
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, _, data in tensors.values():
            f.write(data)


def edit_model(model_dir, edit):
    """Applies edit(tensors) to the single-file checkpoint of a copied fixture."""
    path = os.path.join(model_dir, "model.safetensors")
    tensors, meta = read_safetensors(path)
    edit(tensors)
    write_safetensors(path, tensors, meta)


def set_bf16(tensors, name, index, bits):
    dtype, _, data = tensors[name]
    check(dtype == "BF16", f"{name} is {dtype}, expected BF16")
    data[2 * index:2 * index + 2] = struct.pack("<H", bits)


def edit_config(model_dir, **changes):
    path = os.path.join(model_dir, "config.json")
    with open(path) as f:
        config = json.load(f)
    config.update(changes)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


QWEN_EXPERT = "model.layers.{}.mlp.experts.{}.{}.weight"


def quantize_bad(ctx, model, *needles, extra=()):
    """Quantizes `model` expecting a clear error, and checks that no output was left."""
    out = ctx.path("out")
    proc = ctx.run("quantize", "--model", model, "--format", "fp8", "--out", out, *extra)
    expect_error(proc, *needles)
    expect_no_output(out)


# ---- (a) the built-in model -----------------------------------------------------------------

def test_builtin_model(ctx):
    proc = ctx.ok("quantize", "--format", "nvfp4")
    check("No --model given" in proc.stdout, "no note about the built-in model")
    # The whole path: calibrated on seeded random tokens, so the static W4A4 scheme is written.
    check("calibration data: 16 samples" in proc.stdout, "the built-in run was not calibrated")
    check("ModelOpt NVFP4 (W4A4" in proc.stdout, "the built-in run did not write W4A4")
    check("wrote " in proc.stdout and "bits per parameter" in proc.stdout,
          "the summary is missing")
    check("weight_quantizer" in proc.stdout, "the quantizer table is missing")
    # The built-in model lives in a fresh /tmp/moequant-builtin-* folder, removed at exit with
    # the demonstration's output; with --out the output stays and the model still goes.
    def builtin_folder(stdout):
        line = [l for l in stdout.splitlines() if "written to " in l]
        check(len(line) == 1, "the built-in model's folder is not named")
        folder = os.path.dirname(line[0].split("written to ", 1)[1].split(" (")[0].strip())
        check(os.path.basename(folder).startswith("moequant-builtin-"), f"odd folder {folder}")
        return folder

    folder = builtin_folder(proc.stdout)
    leftover = os.path.exists(folder)
    shutil.rmtree(folder, ignore_errors=True)
    check(not leftover, f"the built-in run left {folder} behind")
    out = ctx.path("kept")
    proc = ctx.ok("quantize", "--format", "fp8", "--out", out, "--no-table")
    folder = builtin_folder(proc.stdout)
    leftover = os.path.exists(folder)
    shutil.rmtree(folder, ignore_errors=True)
    check(not leftover, f"the built-in run with --out left {folder} behind")
    check(os.path.isfile(os.path.join(out, "config.json")), "the output given by --out is gone")


# ---- (b) round trips over the fixtures --------------------------------------------------------

def roundtrip(ctx, model, fmt):
    src = ctx.fixture(model)
    out = ctx.path("q")
    partial = ["--allow-partial-blocks"] if fmt == "fp8_block" else []
    proc = ctx.ok("quantize", "--model", src, "--format", fmt, "--out", out, "--no-table", *partial)
    check("wrote " in proc.stdout, "no summary line")
    if fmt == "fp8_block":
        check("vLLM and SGLang will not load it" in proc.stdout,
              "no note that vLLM/SGLang refuse partial fp8 blocks")
    check(os.path.isfile(os.path.join(out, "model.safetensors.index.json")), "no index written")
    proc = ctx.ok("verify", "--source", src, "--quantized", out)
    check("verify: PASSED" in proc.stdout, "verify did not report PASSED")
    proc = ctx.ok("inspect", out)
    check(f"format {fmt}" in proc.stdout, f"inspect did not report format {fmt}")
    doc = json.loads(ctx.ok("inspect", "--json", out).stdout)
    check(doc["format"] == fmt, f"inspect --json format {doc['format']} != {fmt}")
    summary = doc["summary"]
    if fmt == "none":
        check(summary["weights_quantized"] == 0, "format none reports quantized weights")
    else:
        check(summary["weights_quantized"] > 0, "no quantized weights reported")
        expected_bits = {"fp8": 8, "fp8_block": 8, "nvfp4": 4.5, "int4": 4}[fmt]
        check(expected_bits <= summary["bits_per_param"] < expected_bits + 1.5,
              f"{summary['bits_per_param']} bits per parameter for {fmt}")
        for w in doc["weights"]:
            if w["format"] != "none":
                check(w["scales_valid"] and w["amax"] > 0, f"bad scales reported for {w['name']}")
    verify = json.loads(ctx.ok("verify", "--json", "--source", src, "--quantized", out).stdout)
    check(verify["passed"] and not verify["problems"], "verify --json did not pass")


# ---- (c) calibration with data -----------------------------------------------------------------

def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def test_calibrated_exports_carry_input_scales(ctx):
    src = ctx.fixture("mixtral")
    data = write_jsonl(ctx.path("ids.jsonl"), [{"input_ids": list(range(i, i + 12))}
                                               for i in range(0, 48, 12)])
    for fmt, algo in (("fp8", "FP8"), ("nvfp4", "NVFP4")):
        out = ctx.path("q-" + fmt)
        proc = ctx.ok("quantize", "--model", src, "--format", fmt, "--out", out, "--no-table",
                      "--calib-data", data, "--calib-seq-len", "12")
        check("calibration data: 4 samples x 12 tokens = 48 tokens" in proc.stdout,
              "the summary does not give the calibration tokens")
        with open(os.path.join(out, "config.json")) as f:
            q = json.load(f)["quantization_config"]
        check(q["quant_algo"] == algo, f"{fmt}: quant_algo {q['quant_algo']}, expected {algo}")
        with open(os.path.join(out, "model.safetensors.index.json")) as f:
            names = json.load(f)["weight_map"]
        for e in range(4):
            for proj in ("w1", "w3", "w2"):
                name = f"model.layers.1.block_sparse_moe.experts.{e}.{proj}.input_scale"
                check(name in names, f"{fmt}: {name} missing")
        ctx.ok("verify", "-q", "--source", src, "--quantized", out)


def test_calib_experts_without_tokens_fall_back_with_one_warning(ctx):
    # One sequence of two tokens reaches at most 4 of the 8 experts per layer.
    src = ctx.fixture("qwen3moe")
    data = write_jsonl(ctx.path("ids.jsonl"), [{"input_ids": [5, 77]}])
    out = ctx.path("q")
    proc = ctx.ok("quantize", "--model", src, "--format", "fp8", "--out", out, "--no-table",
                  "--calib-data", data, "--calib-seq-len", "2", "--expert-amax", "per-expert")
    lines = [l for l in proc.stdout.splitlines() if "got no calibration token" in l]
    check(len(lines) == 1 and "layer 0 expert" in lines[0], f"expected one warning: {lines}")
    check(any("fell back" in l for l in proc.stdout.splitlines()),
          "the exporter did not report the fallback")
    ctx.ok("verify", "-q", "--source", src, "--quantized", out)


def test_calib_data_bad_input(ctx):
    src = ctx.fixture("qwen3moe")
    good = {"input_ids": list(range(8))}
    cases = [
        ([good, {"input_ids": [1, 2, 3, 4, 5, 6, 7, 999]}], ("ids.jsonl:2", "token id 999",
                                                           "vocabulary of 256")),
        ([good, {"input_ids": [1, 2, 3]}], ("ids.jsonl:2", "3 token ids", "--calib-seq-len 8")),
        ([good, "{not json"], ("ids.jsonl:2", "not valid JSON")),
        ([{"text": "hello"}], ("ids.jsonl", "tokenizer.json", "does not exist")),
        ([{"tokens": [1, 2]}], ("ids.jsonl:1", "text")),
        ([], ("no calibration samples",)),
    ]
    for rows, needles in cases:
        data = write_jsonl(ctx.path("ids.jsonl"), rows)
        quantize_bad(ctx, src, *needles, extra=("--calib-data", data, "--calib-seq-len", "8"))
    quantize_bad(ctx, src, "calibration data", extra=("--calib-data", ctx.path("absent.jsonl")))
    data = write_jsonl(ctx.path("ids.jsonl"), [good])
    quantize_bad(ctx, src, "fewer than --calib-samples 3",
                 extra=("--calib-data", data, "--calib-seq-len", "8", "--calib-samples", "3"))


def test_text_calibration_with_the_model_tokenizer(ctx):
    # A Qwen3-vocabulary model holding Qwen3's own tokenizer.json (fetched by the tokenizer tests'
    # fixture; MOEQUANT_TOKENIZER_FILES names where).
    tok = os.path.join(os.environ["MOEQUANT_TOKENIZER_FILES"], "qwen3", "tokenizer.json")
    model = ctx.path("qwen3-vocab")
    ctx.ok("generate", "--out", model, "--vocab", "151936", "--layers", "2", "--experts", "4")
    shutil.copy(tok, os.path.join(model, "tokenizer.json"))
    corpus = write_jsonl(ctx.path("corpus.jsonl"),
                         [{"text": "Calibration text, in several languages: 日本語, русский, "
                                   "العربية, emoji 🎉 and numbers 1234567."}] * 8)
    out = ctx.path("q")
    proc = ctx.ok("quantize", "--model", model, "--format", "nvfp4", "--out", out, "--no-table",
                  "--calib-data", corpus, "--calib-seq-len", "32")
    check("tokenized with" in proc.stdout and "ModelOpt NVFP4 (W4A4" in proc.stdout,
          f"text calibration did not run:\n{proc.stdout}")
    check(os.path.isfile(os.path.join(out, "tokenizer.json")),
          "the export does not carry the model's tokenizer.json")
    ctx.ok("verify", "-q", "--source", model, "--quantized", out)
    txt = ctx.path("corpus.txt")
    with open(txt, "w") as f:
        f.write("A paragraph.\nIts second line.\n\nAnother paragraph.\n")
    quantize_bad(ctx, model, "corpus.txt", "fewer than 4 sequence(s) of 64",
                 extra=("--calib-data", txt, "--calib-seq-len", "64", "--calib-samples", "4"))
    with open(txt, "wb") as f:
        f.write(b"valid text \xff\xfe not UTF-8\n")
    quantize_bad(ctx, model, "corpus.txt", "UTF-8", extra=("--calib-data", txt))
    os.remove(os.path.join(model, "tokenizer.json"))
    quantize_bad(ctx, model, "tokenizer.json", extra=("--calib-data", corpus))


def test_eval_reports_each_export_against_its_source(ctx):
    src = ctx.fixture("qwen3moe")
    data = write_jsonl(ctx.path("held_out.jsonl"),
                       [{"input_ids": [(7 * i + 3 * j) % 256 for j in range(24)]} for i in range(6)])
    outs = {}
    for fmt, extra in (("none", ()), ("fp8", ("--calib-data", "random", "--calib-seq-len", "16")),
                       ("nvfp4", ())):
        outs[fmt] = ctx.path("q-" + fmt)
        ctx.ok("quantize", "-q", "--model", src, "--format", fmt, "--out", outs[fmt], *extra)
    proc = ctx.ok("eval", "-q", "--source", src, "--data", data, "--seq-len", "24",
                  *[a for f in ("none", "fp8", "nvfp4") for a in ("--quantized", outs[f])])
    check("over 138 next-token positions" in proc.stdout, f"wrong token count:\n{proc.stdout}")
    rows = {}
    for line in proc.stdout.splitlines():
        for fmt, out in outs.items():
            if line.startswith(out + " "):
                cols = line.split()
                rows[fmt] = (float(cols[-4]), float(cols[-2]), float(cols[-1]))
    check(sorted(rows) == ["fp8", "none", "nvfp4"], f"missing rows:\n{proc.stdout}")
    source_ppl = float(proc.stdout.split("perplexity ")[1].split()[0])
    # The unquantized export is the source: the same perplexity, no divergence, full agreement.
    check(abs(rows["none"][0] - source_ppl) < 1e-3 and rows["none"][1] == 0.0 and
          rows["none"][2] == 1.0, f"the 'none' export differs from its source: {rows['none']}")
    for fmt in ("fp8", "nvfp4"):
        ppl, kl, top1 = rows[fmt]
        check(kl > 0 and 0.5 < top1 <= 1.0, f"{fmt}: implausible KL {kl} / top-1 {top1}")
    check(rows["nvfp4"][1] > rows["fp8"][1], "4-bit weights should diverge more than 8-bit ones")
    proc = ctx.run("eval", "--source", ctx.fixture("mixtral"), "--quantized", outs["fp8"],
                   "--data", data, "--seq-len", "24")
    expect_error(proc, "is not an export of")


# ---- (d) bad input ----------------------------------------------------------------------------

def test_progress_speaks_in_sizes_and_layers(ctx):
    """Not a terminal: plain progress lines in a person's units (sizes, layers), ending at 100%."""
    out = ctx.path("out")
    proc = ctx.ok("quantize", "--model", ctx.fixture("qwen3moe"), "--format", "nvfp4",
                  "--out", out, "--calib-data", "random", "--calib-samples", "2",
                  "--calib-seq-len", "16", "--no-table")
    lines = proc.stderr.splitlines()
    exporting = [l for l in lines if l.startswith("exporting: ")]
    calibrating = [l for l in lines if l.startswith("calibrating: ")]
    size = r"\d+\.\d/\d+\.\d (B|KB|MB|GB|TB)"
    check(exporting and all(re.match(r"^exporting: \d+% " + size + r"(, .*)?$", l)
                            for l in exporting), f"export progress not in sizes: {exporting}")
    check(exporting[-1].startswith("exporting: 100% "), f"export progress ends at {exporting[-1]!r}")
    check(calibrating and calibrating[-1] == "calibrating: 100% 2/2 layers",
          f"calibration progress not in layers: {calibrating}")
    check(not any("\r" in l for l in lines), "progress redrawn with \\r while not a terminal")


def test_fp8_block_with_partial_blocks_is_refused_unless_asked(ctx):
    """vLLM's and SGLang's fused MoE refuse fp8 blocks over an intermediate size that is not a
    multiple of 128 (the fixture's is 32): refused up front, naming the rule and the flag."""
    out = ctx.path("out")
    proc = ctx.run("quantize", "--model", ctx.fixture("qwen3moe"), "--format", "fp8_block",
                   "--out", out)
    expect_error(proc, "fp8_block", "intermediate size 32 is not a multiple of 128",
                 "--allow-partial-blocks")
    expect_no_output(out)
    proc = ctx.ok("quantize", "--model", ctx.fixture("qwen3moe"), "--format", "fp8_block",
                  "--out", out, "--allow-partial-blocks", "--no-table")
    check("vLLM and SGLang will not load it" in proc.stdout, "no note of the engines that refuse it")


def test_missing_model_folder(ctx):
    quantize_bad(ctx, ctx.path("no-such-model"), "no-such-model", "does not exist")


def test_folder_without_config(ctx):
    model = ctx.copy_fixture("qwen3moe")
    os.remove(os.path.join(model, "config.json"))
    quantize_bad(ctx, model, "config.json")


def test_unknown_model_type(ctx):
    model = ctx.copy_fixture("qwen3moe")
    edit_config(model, model_type="llama")
    quantize_bad(ctx, model, "llama", "model_type")


def test_missing_expert_tensor(ctx):
    model = ctx.copy_fixture("qwen3moe")
    name = QWEN_EXPERT.format(1, 3, "up_proj")
    edit_model(model, lambda t: t.pop(name))
    quantize_bad(ctx, model, name, "missing")


def test_extra_expert_tensor(ctx):
    model = ctx.copy_fixture("qwen3moe")
    name = QWEN_EXPERT.format(0, 8, "gate_proj")  # the fixture has experts 0..7

    def add(t):
        dtype, shape, data = t[QWEN_EXPERT.format(0, 7, "gate_proj")]
        t[name] = (dtype, shape, bytearray(data))

    edit_model(model, add)
    quantize_bad(ctx, model, name, "expert 8")


def test_shape_mismatch(ctx):
    model = ctx.copy_fixture("qwen3moe")
    name = QWEN_EXPERT.format(0, 2, "down_proj")  # [64, 32] in the fixture

    def reshape(t):
        dtype, shape, data = t[name]
        t[name] = (dtype, [64, 16], data[:64 * 16 * 2])

    edit_model(model, reshape)
    quantize_bad(ctx, model, name, "[64, 16]", "[64, 32]")


def test_layout_does_not_divide(ctx):
    # One rank cannot hold an EP-3 layout, and 8 experts do not split over 3 ranks either.
    quantize_bad(ctx, ctx.fixture("qwen3moe"), "EP", "3", extra=("--ep", "3"))


def test_layout_experts_do_not_divide_mpi(ctx):
    check(ctx.mpiexec, "no mpiexec given")
    out = ctx.path("out")
    proc = ctx.run("quantize", "--model", ctx.fixture("qwen3moe"), "--out", out, "--ep", "3",
                   launcher=ctx.mpiexec + ["-np", "3"])
    expect_error(proc, "8", "3", "expert")
    expect_no_output(out)


def test_nan_in_expert_weight(ctx):
    model = ctx.copy_fixture("qwen3moe")
    name = QWEN_EXPERT.format(1, 4, "down_proj")
    edit_model(model, lambda t: set_bf16(t, name, 77, 0x7FC0))
    quantize_bad(ctx, model, name, "NaN")


def test_inf_in_expert_weight(ctx):
    model = ctx.copy_fixture("qwen3moe")
    name = QWEN_EXPERT.format(0, 6, "gate_proj")
    edit_model(model, lambda t: set_bf16(t, name, 5, 0xFF80))  # -inf
    quantize_bad(ctx, model, name, "Inf")


def test_truncated_safetensors(ctx):
    model = ctx.copy_fixture("qwen3moe")
    path = os.path.join(model, "model.safetensors")
    size = os.path.getsize(path)
    os.truncate(path, size // 2)
    quantize_bad(ctx, model, "model.safetensors")


def test_bad_header_length(ctx):
    model = ctx.copy_fixture("mixtral")
    path = os.path.join(model, "model.safetensors")
    with open(path, "r+b") as f:
        f.write(struct.pack("<Q", 1 << 40))
    quantize_bad(ctx, model, "model.safetensors", "header")


def test_unwritable_output(ctx):
    # Tests run as root, so permissions would not stop the write: use a path under a file.
    blocker = ctx.path("file.txt")
    with open(blocker, "w") as f:
        f.write("not a folder\n")
    out = os.path.join(blocker, "out")
    proc = ctx.run("quantize", "--model", ctx.fixture("qwen3moe"), "--out", out)
    expect_error(proc, out)
    check(os.path.isfile(blocker), "the blocking file was touched")


def test_existing_output_needs_overwrite(ctx):
    src = ctx.fixture("mixtral")
    out = ctx.path("out")
    os.makedirs(out)
    marker = os.path.join(out, "keep.txt")
    with open(marker, "w") as f:
        f.write("old\n")
    proc = ctx.run("quantize", "--model", src, "--format", "fp8", "--out", out)
    expect_error(proc, out, "--overwrite")
    check(os.path.isfile(marker), "the existing folder was modified without --overwrite")
    ctx.ok("quantize", "--model", src, "--format", "fp8", "--out", out, "--overwrite", "-q")
    check(not os.path.exists(marker), "--overwrite kept the old folder's content")
    ctx.ok("verify", "--quiet", "--source", src, "--quantized", out)


def test_unknown_flag(ctx):
    proc = ctx.run("quantize", "--model", ctx.fixture("qwen3moe"), "--out", ctx.path("out"),
                   "--bogus-flag")
    check(proc.returncode != 0, "an unknown flag was accepted")
    check("--bogus-flag" in proc.stderr.splitlines()[0] if proc.stderr else False,
          "the error does not name the unknown flag on its first line")
    expect_no_output(ctx.path("out"))


def test_unknown_format(ctx):
    proc = ctx.run("quantize", "--model", ctx.fixture("qwen3moe"), "--out", ctx.path("out"),
                   "--format", "fp4")
    check(proc.returncode != 0, "an unknown format was accepted")
    first = proc.stderr.splitlines()[0] if proc.stderr else ""
    check("--format" in first and "fp4" in first, f"unclear error: {first!r}")
    expect_no_output(ctx.path("out"))


def test_usage_errors_are_one_line(ctx):
    """Every option-parser error: one 'moequant: error:' line naming the flag and the value in
    words (no 'not in range 0.000000 to 1.79e308'), exit code 2, nothing written."""
    out = ctx.path("out")
    src = ctx.fixture("qwen3moe")
    cases = [
        (("quantize", "--model", src, "--out", out, "--threads", "-3"), ("--threads", "-3", "not positive")),
        (("quantize", "--model", src, "--out", out, "--calib-samples", "abc"), ("--calib-samples", "'abc'", "not a finite number")),
        (("quantize", "--model", src, "--out", out, "--timeout", "nan"), ("--timeout", "'nan'")),
        (("quantize", "--model", src, "--out", out, "--calib-batch", "0"), ("--calib-batch", "out of range", "1 to 1048576")),
        (("quantize", "--model", src, "--out", out, "--ep", "1.5"), ("--ep", "'1.5'", "whole number")),
        (("quantize", "--model", src, "--out", out, "--bogus"), ("--bogus", "moequant quantize --help")),
        (("generate", "--out", out, "--layers", "0"), ("--layers", "0 is not positive")),
        (("generate", "--out", out, "--experts", "99999999999"), ("--experts", "'99999999999'")),
        (("eval", "--source", src, "--quantized", src, "--data", "random", "--seq-len", "1"), ("--seq-len", "from 2")),
        (("frobnicate",), ("unknown command 'frobnicate'", "quantize, inspect")),
        ((), ("subcommand is required",)),
    ]
    for args, needles in cases:
        proc = ctx.run(*args)
        expect_error(proc, *needles)
        check(proc.returncode == 2, f"{args}: exit {proc.returncode}, expected 2 (usage error)")
        check("Run with --help" not in proc.stderr, f"{args}: CLI11's second line: {proc.stderr!r}")
        expect_no_output(out)
    help_proc = ctx.run("quantize", "--help")
    check(help_proc.returncode == 0 and "--format" in help_proc.stdout, "quantize --help failed")


# ---- inspect / verify on bad input ---------------------------------------------------------

def test_inspect_bad_input(ctx):
    expect_error(ctx.run("inspect", ctx.path("missing")), "missing", "does not exist")
    model = ctx.copy_fixture("qwen3moe")
    os.remove(os.path.join(model, "config.json"))
    expect_error(ctx.run("inspect", model), "config.json")
    model = ctx.copy_fixture("mixtral", "m2")
    with open(os.path.join(model, "model.safetensors"), "r+b") as f:
        f.write(struct.pack("<Q", 3))
    expect_error(ctx.run("inspect", model), "model.safetensors")


def quantized_copy(ctx, model, fmt):
    src = ctx.fixture(model)
    out = ctx.path("q")
    ctx.ok("quantize", "-q", "--model", src, "--format", fmt, "--out", out)
    shard = [f for f in os.listdir(out) if f.endswith(".safetensors")]
    check(len(shard) == 1, f"expected one shard, got {shard}")
    return src, out, os.path.join(out, shard[0])


def test_verify_detects_changed_passthrough(ctx):
    src, out, shard = quantized_copy(ctx, "qwen3moe", "fp8")
    name = "model.layers.1.self_attn.o_proj.weight"
    tensors, meta = read_safetensors(shard)
    tensors[name][2][10] ^= 0x01
    write_safetensors(shard, tensors, meta)
    proc = ctx.run("verify", "--source", src, "--quantized", out)
    check(proc.returncode == 1, f"verify exit code {proc.returncode}, expected 1")
    check(name in proc.stderr and "differs" in proc.stderr, "verify did not name the tensor")
    check("verify: FAILED" in proc.stdout, "no FAILED verdict")


def test_verify_detects_bad_scales(ctx):
    src, out, shard = quantized_copy(ctx, "mixtral", "nvfp4")
    zeroed = "model.layers.0.block_sparse_moe.experts.1.w2.weight_scale_2"
    up = "model.layers.1.block_sparse_moe.experts.2.w3.weight_scale_2"
    tensors, meta = read_safetensors(shard)
    tensors[zeroed][2][:] = struct.pack("<f", 0.0)
    (scale,) = struct.unpack("<f", bytes(tensors[up][2]))
    tensors[up][2][:] = struct.pack("<f", scale * 1.5)
    write_safetensors(shard, tensors, meta)
    proc = ctx.run("verify", "--quiet", "--source", src, "--quantized", out)
    check(proc.returncode == 1, f"verify exit code {proc.returncode}, expected 1")
    check(zeroed in proc.stderr, "the zero scale was not named")
    check("gate and up have different weight_scale_2" in proc.stderr,
          "the gate/up scale mismatch was not reported")


def test_verify_detects_fused_scale_and_kv_cache_mismatches(ctx):
    src = ctx.fixture("qwen3moe")
    out = ctx.path("q")
    ctx.ok("quantize", "-q", "--model", src, "--out", out, "--quantize", "all-linear",
           "--kv-cache", "fp8", "--calib-data", "random", "--calib-seq-len", "16")
    ctx.ok("verify", "-q", "--source", src, "--quantized", out)
    shard = os.path.join(out, [f for f in os.listdir(out) if f.endswith(".safetensors")][0])
    # k_proj's weight scale no longer equal to q_proj's: vLLM keeps one for qkv_proj.
    k = "model.layers.1.self_attn.k_proj.weight_scale"
    tensors, meta = read_safetensors(shard)
    (scale,) = struct.unpack("<f", bytes(tensors[k][2]))
    tensors[k][2][:] = struct.pack("<f", scale * 2)
    write_safetensors(shard, tensors, meta)
    proc = ctx.run("verify", "--quiet", "--source", src, "--quantized", out)
    check(proc.returncode == 1, f"verify exit code {proc.returncode}, expected 1")
    check(k in proc.stderr and "one fused linear" in proc.stderr,
          f"the q/k/v scale mismatch was not reported: {proc.stderr}")
    # KV-cache scales present but no longer declared: engines would ignore them.
    tensors[k][2][:] = struct.pack("<f", scale)
    write_safetensors(shard, tensors, meta)
    config = os.path.join(out, "config.json")
    with open(config) as f:
        doc = json.load(f)
    for key in ("kv_cache_scheme", "kv_cache_quant_algo"):
        doc["quantization_config"].pop(key)
    with open(config, "w") as f:
        json.dump(doc, f)
    proc = ctx.run("verify", "--quiet", "--source", src, "--quantized", out)
    check(proc.returncode == 1, f"verify exit code {proc.returncode}, expected 1")
    check("declares no FP8 KV cache" in proc.stderr or "does not declare" in proc.stderr,
          f"undeclared KV-cache scales were not reported: {proc.stderr}")


def test_verify_detects_missing_and_extra(ctx):
    src, out, shard = quantized_copy(ctx, "qwen3moe", "int4")
    gone = "model.layers.0.mlp.experts.5.up_proj.scales"
    tensors, meta = read_safetensors(shard)
    tensors.pop(gone)
    tensors["model.layers.0.mlp.experts.8.up_proj.qweight"] = ("I32", [1], bytearray(4))
    write_safetensors(shard, tensors, meta)
    index = os.path.join(out, "model.safetensors.index.json")
    with open(index) as f:
        doc = json.load(f)
    doc["weight_map"].pop(gone)
    doc["weight_map"]["model.layers.0.mlp.experts.8.up_proj.qweight"] = os.path.basename(shard)
    with open(index, "w") as f:
        json.dump(doc, f)
    proc = ctx.run("verify", "--json", "--source", src, "--quantized", out)
    check(proc.returncode == 1, f"verify exit code {proc.returncode}, expected 1")
    report = json.loads(proc.stdout)
    text = "\n".join(report["problems"])
    check(gone in text and "missing" in text, "the missing scales were not reported")
    check("experts.8.up_proj.qweight" in text and "unexpected" in text,
          "the extra tensor was not reported")


def test_exclude_keeps_gate_and_up_together(ctx):
    # Serving engines load gate and up as one fused weight: excluding only gate must leave
    # both unquantized, and the export must then verify. (int4: the format whose config can
    # leave single experts out.)
    src = ctx.fixture("qwen3moe")
    out = ctx.path("q")
    ctx.ok("quantize", "-q", "--model", src, "--format", "int4", "--out", out,
           "--exclude", "*.experts.0.gate_proj")
    with open(os.path.join(out, "model.safetensors.index.json")) as f:
        names = json.load(f)["weight_map"]
    for proj in ("gate_proj", "up_proj"):
        check(f"model.layers.0.mlp.experts.0.{proj}.qweight" not in names,
              f"{proj} of the excluded expert was quantized")
    check("model.layers.0.mlp.experts.0.down_proj.qweight" in names,
          "down_proj of the expert was excluded too")
    check("model.layers.0.mlp.experts.1.up_proj.qweight" in names,
          "other experts were excluded too")
    proc = ctx.run("verify", "--quiet", "--source", src, "--quantized", out)
    check(proc.returncode == 0, f"verify failed: {proc.stderr}")


def test_exclude_part_of_a_layer_is_refused(ctx):
    # One quantization method per fused MoE layer in every engine: fp8 with one expert left out
    # would be misread, so it is refused before anything is written.
    src = ctx.fixture("qwen3moe")
    out = ctx.path("q")
    proc = ctx.run("quantize", "-q", "--model", src, "--format", "fp8", "--out", out,
                   "--exclude", "*.experts.0.gate_proj")
    expect_error(proc, "layer 0", "fused MoE", "int4")
    check(not os.path.exists(out), "a refused export left an output folder")


def test_verify_tolerance(ctx):
    src, out, _ = quantized_copy(ctx, "qwen3moe", "nvfp4")
    proc = ctx.run("verify", "--quiet", "--tolerance", "0.001", "--source", src, "--quantized", out)
    check(proc.returncode == 1, "a tolerance below the nvfp4 error passed")
    check("exceeds the tolerance" in proc.stderr, "no tolerance problem reported")


# ---- more layouts ---------------------------------------------------------------------------

def test_generated_fused_sharded(ctx):
    model = ctx.path("gen")
    ctx.ok("generate", "--out", model, "--model-type", "mixtral", "--fused", "--shards", "2",
           "--experts", "4", "--hidden", "128", "--intermediate", "64")
    out = ctx.path("q")
    ctx.ok("quantize", "-q", "--model", model, "--format", "int4", "--out", out,
           "--exclude", "*.experts.3.w2", "--max-shard-size", "40KB")
    check(len([f for f in os.listdir(out) if f.endswith(".safetensors")]) > 1,
          "--max-shard-size did not split the output")
    proc = ctx.ok("verify", "--source", model, "--quantized", out)
    check("excluded): 2" in proc.stdout, "excluded experts not reported")


def test_mpirun_two_ranks(ctx):
    check(ctx.mpiexec, "no mpiexec given")
    src = ctx.fixture("qwen3moe")
    out = ctx.path("q")
    ctx.ok("quantize", "-q", "--model", src, "--format", "nvfp4", "--out", out,
           launcher=ctx.mpiexec + ["-np", "2"])
    ctx.ok("verify", "--quiet", "--source", src, "--quantized", out)


# ---- (e) nothing lost, nothing hung (issue #25) --------------------------------------------

def expect_untouched(folder, before):
    """`folder` holds exactly the files (and bytes) `before` recorded."""
    check(snapshot(folder) == before, f"{folder} was modified")


def snapshot(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = fh.read()
    return out


def test_concurrent_runs_on_one_out_are_locked(ctx):
    # Two runs started together into one --out, 10 rounds over two fixtures and formats. The
    # first to lock the output waits (a test pause) until the other has ended: the other must
    # fail at once naming the owner's host and pid, and the owner's published folder must
    # verify against its own source.
    out = ctx.path("shared-out")
    sources = [("qwen3moe", "fp8"), ("mixtral", "nvfp4")]
    for round_no in range(10):
        pause = ctx.path(f"pause-{round_no}")
        env = pause_env("output-locked", pause)
        procs = []
        for model, fmt in (sources if round_no % 2 == 0 else sources[::-1]):
            procs.append((ctx.start("quantize", "-q", "--overwrite", "--model", ctx.fixture(model),
                                    "--format", fmt, "--out", out, env=env), model))
        deadline = time.time() + 60
        while not os.listdir(pause) and time.time() < deadline:
            if all(p.poll() is not None for p, _ in procs):  # both ended: neither waited
                codes = [finish(p).returncode for p, _ in procs]
                raise Failure(f"round {round_no}: two runs into one --out both ended without "
                              f"one holding the lock (exit codes {codes})")
            time.sleep(0.01)
        holder = wait_for_pause(pause, "output-locked")
        check(len(holder) == 1, f"round {round_no}: {len(holder)} runs hold the lock at once")
        winner = [(p, m) for p, m in procs if p.pid == holder[0]]
        loser = [(p, m) for p, m in procs if p.pid != holder[0]]
        check(len(winner) == 1 and len(loser) == 1, "the lock holder is not one of the two runs")
        lost = finish(loser[0][0], timeout=60)  # must end while the other still holds the lock
        error = expect_error(lost, "is being written by another moequant run",
                             f"host {socket.gethostname()}", f"pid {holder[0]}")
        check(winner[0][0].poll() is None, "the lock holder ended before it was released")
        release(pause)
        won = finish(winner[0][0])
        check(won.returncode == 0, f"round {round_no}: the lock holder failed: {won.stderr}")
        ctx.ok("verify", "-q", "--source", ctx.fixture(winner[0][1]), "--quantized", out)
        check(not os.path.exists(out + ".moequant-lock"), "the lock file was left behind")
        check(not os.path.exists(out + ".moequant-partial"), "a partial folder was left behind")
        print(f"round {round_no}: {winner[0][1]} won, {loser[0][1]} refused: {error}")


def test_killed_run_is_reported_by_the_next(ctx):
    # A run killed mid-export (SIGKILL: no cleanup possible) leaves its partial folder and its
    # lock file; the next run into the same --out reports both, naming the killed run.
    out = ctx.path("out")
    pause = ctx.path("pause")
    victim = ctx.start("quantize", "-q", "--model", ctx.fixture("qwen3moe"), "--out", out,
                       env=pause_env("export-files-created", pause))
    wait_for_pause(pause, "export-files-created", procs=[victim])
    victim.kill()
    victim.wait()
    check(os.path.isdir(out + ".moequant-partial") and os.path.isfile(out + ".moequant-lock"),
          "the killed run left no partial folder and lock to find")
    proc = ctx.ok("quantize", "--no-table", "--model", ctx.fixture("mixtral"), "--out", out)
    lines = [l for l in proc.stdout.splitlines() if "stale partial folder" in l]
    check(len(lines) == 1, f"the stale partial folder was not reported: {proc.stdout}")
    for needle in (f"host {socket.gethostname()}", f"pid {victim.pid}", "did not finish"):
        check(needle in lines[0], f"the report does not name {needle!r}: {lines[0]}")
    ctx.ok("verify", "-q", "--source", ctx.fixture("mixtral"), "--quantized", out)
    check(not os.path.exists(out + ".moequant-lock"), "the lock file was left behind")


def test_out_that_would_delete_the_source_is_refused(ctx):
    models = ctx.path("models")
    model = ctx.copy_fixture("qwen3moe", os.path.join("models", "m"))
    with open(os.path.join(models, "unrelated.txt"), "w") as f:
        f.write("someone else's file\n")
    os.symlink(model, ctx.path("alias"))
    before = snapshot(models)
    cases = [
        (model, "is the model folder"),                                  # --out = --model
        (models, "is the model folder"),                                 # a parent of it
        (ctx.path("alias"), "is the model folder"),                      # a symlink to it
        (os.path.join(models, "x", "..", "m"), "is the model folder"),   # spelled with ..
        (os.path.join(ctx.path("alias"), ".."), "is the model folder"),  # .. through a link
        (os.path.join(model, "q"), "inside the model folder"),           # inside it
    ]
    for out, needle in cases:
        proc = ctx.run("quantize", "--model", model, "--format", "fp8", "--out", out,
                       "--overwrite")
        expect_error(proc, "--out", needle)
        expect_untouched(models, before)
    # Through a symlinked --model too.
    proc = ctx.run("quantize", "--model", ctx.path("alias"), "--out", models, "--overwrite")
    expect_error(proc, "is the model folder")
    expect_untouched(models, before)
    # A bind mount spells the same folders with other paths: device and inode tell (root only).
    bound = ctx.path("bound")
    os.makedirs(bound)
    if subprocess.run(["mount", "--bind", models, bound]).returncode != 0:
        print("cannot bind-mount here: the bind-mount half of this test is skipped")
        return
    try:
        for out in (bound, os.path.join(bound, "m")):
            proc = ctx.run("quantize", "--model", model, "--out", out, "--overwrite")
            expect_error(proc, "--out", "is the model folder")
            expect_untouched(models, before)
    finally:
        subprocess.run(["umount", bound])


def interrupt_mid_export(ctx, sig, launcher=None, ranks=1):
    model = ctx.path("gen")
    if not os.path.isdir(model):
        ctx.ok("generate", "--out", model, "--layers", "4", "--experts", "16", "--hidden", "128",
               "--intermediate", "64")
    out = ctx.path(f"out-{sig}")
    pause = ctx.path(f"pause-{sig}")
    env = pause_env("export-files-created", pause)
    launch = list(launcher or [])
    if launcher:
        launch += ["-x", "MOEQUANT_TEST_PAUSE", "-np", str(ranks)]
    proc = ctx.start("quantize", "-q", "--model", model, "--format", "nvfp4", "--out", out,
                     launcher=launch, env=env)
    wait_for_pause(pause, "export-files-created", count=ranks, procs=[proc])
    partial = out + ".moequant-partial"
    shards = [f for f in os.listdir(partial) if f.endswith(".safetensors")]
    check(shards, "the export had not created its files yet")
    proc.send_signal(sig)  # alone: the run; under mpirun: mpirun, which passes it on to every rank
    done = finish(proc, timeout=60)
    name = signal.Signals(sig).name
    lines = [l for l in done.stderr.splitlines() if f"interrupted by {name}" in l]
    check(len(lines) == ranks, f"expected {ranks} 'interrupted by {name}' line(s): {done.stderr}")
    check(any(f"removed the partial folder '{partial}'" in l for l in lines),
          f"no rank says it removed the partial folder: {lines}")
    if not launcher:
        check(done.returncode == 128 + sig,
              f"exit code {done.returncode}, expected 128 + {name} = {128 + sig}")
    else:
        check(done.returncode != 0, "mpirun returned 0 after its ranks were interrupted")
    check(not os.path.exists(partial), "the interrupted run left its partial folder")
    check(not os.path.exists(out + ".moequant-lock"), "the interrupted run left its lock")
    check(not os.path.exists(out), "an interrupted run published its output")


def test_sigterm_and_sigint_mid_export_clean_up(ctx):
    interrupt_mid_export(ctx, signal.SIGTERM)
    interrupt_mid_export(ctx, signal.SIGINT)


def test_sigterm_mid_export_mpi(ctx):
    check(ctx.mpiexec, "no mpiexec given")
    interrupt_mid_export(ctx, signal.SIGTERM, launcher=ctx.mpiexec, ranks=2)


def test_report_json_location_checked_first(ctx):
    out = ctx.path("out")
    proc = ctx.run("quantize", "--model", ctx.fixture("qwen3moe"), "--out", out,
                   "--report-json", ctx.path("no-such-folder", "r.json"))
    expect_error(proc, "--report-json", "no-such-folder", "does not exist")
    expect_no_output(out)
    check(not os.path.exists(out), "the run went ahead with an unwritable report path")
    proc = ctx.run("quantize", "--model", ctx.fixture("qwen3moe"), "--out", out,
                   "--report-json", ctx.tmp)
    expect_error(proc, "--report-json", "is a folder")
    check(not os.path.exists(out), "the run went ahead with a folder as report path")
    # A full disk at the end: a 16 KB tmpfs, filled (needs mount rights: root, as the tests run).
    full = ctx.path("full")
    os.makedirs(full)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", full]).returncode != 0:
        print("cannot mount a tmpfs here: the full-disk half of this test is skipped")
        return
    try:
        with open(os.path.join(full, "filler"), "wb") as f:
            try:
                f.write(b"x" * (64 << 10))
            except OSError:
                pass
        proc = ctx.run("quantize", "--model", ctx.fixture("qwen3moe"), "--out", out,
                       "--report-json", os.path.join(full, "r.json"))
        expect_error(proc, "the output", out, "is complete", "r.json")
        ctx.ok("verify", "-q", "--source", ctx.fixture("qwen3moe"), "--quantized", out)
        left = sorted(f for f in os.listdir(full) if f != "filler")
        check(not left, f"the failed report write left {left} on the full disk")
    finally:
        subprocess.run(["umount", full])


def test_side_files_are_chosen_not_copied_blindly(ctx):
    model = ctx.copy_fixture("qwen3moe")
    wanted = ["tokenizer.json", "tokenizer_config.json", "generation_config.json",
              "chat_template.jinja", "README.md", "LICENSE", "modeling_custom.py"]
    for name in wanted:
        with open(os.path.join(model, name), "w") as f:
            f.write("{}\n" if name.endswith(".json") else "content\n")
    for name in ("pytorch_model.bin", "consolidated.00.pt", "notes.txt", "model.gguf"):
        with open(os.path.join(model, name), "wb") as f:
            f.write(b"\0" * 4096)  # weights of other formats, unrelated files
    os.symlink("/etc/passwd", os.path.join(model, "tokenizer.model"))    # leaves the folder
    os.symlink("/etc/hostname", os.path.join(model, "LICENSE.txt"))      # leaves the folder
    os.symlink("README.md", os.path.join(model, "README"))               # stays inside: fine
    os.mkfifo(os.path.join(model, "special_tokens_map.json"))            # not a regular file
    out = ctx.path("q")
    proc = ctx.run("quantize", "--no-table", "--model", model, "--out", out, timeout=60)
    check(proc.returncode == 0, f"quantize failed: {proc.stderr}")
    expected = sorted(wanted + ["README"])
    copied = sorted(f for f in os.listdir(out) if f not in (
        "config.json", "model.safetensors.index.json", "hf_quant_config.json")
        and not f.endswith(".safetensors"))
    check(copied == expected, f"side files copied: {copied}, expected {expected}")
    line = [l for l in proc.stdout.splitlines() if l.startswith("copied from the model folder")]
    check(line and all(n in line[0] for n in expected),
          f"the summary does not list the copied files: {line}")
    check(not os.path.islink(os.path.join(out, "README")), "a link was copied as a link")
    ctx.ok("verify", "-q", "--source", model, "--quantized", out)


def nested(depth):
    return "[" * depth + "]" * depth


def test_deeply_nested_json_is_refused(ctx):
    # An unknown field nested 100000 deep: legal JSON, refused by the depth limit of every JSON
    # the tool reads, in one line naming the file.
    model = ctx.copy_fixture("qwen3moe")
    path = os.path.join(model, "config.json")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.rstrip().rstrip("}") + ', "unknown_field": ' + nested(100000) + "}\n")
    proc = ctx.run("quantize", "--model", model, "--out", ctx.path("out"), timeout=60)
    expect_error(proc, "config.json", "nested deeper than 64")
    expect_no_output(ctx.path("out"))
    expect_error(ctx.run("inspect", model, timeout=60), "config.json", "nested deeper")
    # A calibration line and a tokenizer.json.
    model = ctx.copy_fixture("qwen3moe", "m2")
    data = write_jsonl(ctx.path("ids.jsonl"), ['{"input_ids": ' + nested(100000) + "}"])
    quantize_bad(ctx, model, "ids.jsonl:1", "nested deeper", extra=("--calib-data", data))
    with open(os.path.join(model, "tokenizer.json"), "w") as f:
        f.write('{"model": ' + nested(100000) + "}")
    text = write_jsonl(ctx.path("text.jsonl"), [{"text": "hello"}])
    quantize_bad(ctx, model, "tokenizer.json", "nested deeper", extra=("--calib-data", text))
    # The shard index and an export's hf_quant_config.json.
    model = ctx.copy_fixture("mixtral", "m3")
    with open(os.path.join(model, "model.safetensors.index.json"), "w") as f:
        f.write('{"weight_map": {}, "metadata": ' + nested(100000) + "}")
    quantize_bad(ctx, model, "model.safetensors.index.json", "nested deeper")
    src, out, _ = quantized_copy(ctx, "mixtral", "nvfp4")
    with open(os.path.join(out, "hf_quant_config.json"), "w") as f:
        f.write('{"quantization": ' + nested(100000) + "}")
    expect_error(ctx.run("inspect", out, timeout=60), "hf_quant_config.json", "nested deeper")


def test_fifo_inputs_are_refused_not_waited_on(ctx):
    # A FIFO where a file is read would block the tool forever: refused by name instead, and a
    # calibration file is opened once (a FIFO cannot be read twice).
    model = ctx.copy_fixture("qwen3moe")
    os.remove(os.path.join(model, "config.json"))
    os.mkfifo(os.path.join(model, "config.json"))
    quantize_bad(ctx, model, "config.json", "not a regular file (a FIFO)")
    expect_error(ctx.run("inspect", model, timeout=60), "config.json", "not a regular file")
    model = ctx.copy_fixture("qwen3moe", "m2")
    fifo = ctx.path("calib.jsonl")
    os.mkfifo(fifo)
    quantize_bad(ctx, model, "calib.jsonl", "not a regular file (a FIFO)",
                 extra=("--calib-data", fifo))
    os.mkfifo(os.path.join(model, "tokenizer.json"))
    text = write_jsonl(ctx.path("text.jsonl"), [{"text": "hello"}])
    quantize_bad(ctx, model, "tokenizer.json", "not a regular file (a FIFO)",
                 extra=("--calib-data", text))
    src, out, _ = quantized_copy(ctx, "mixtral", "fp8")
    for name in ("config.json",):
        os.remove(os.path.join(out, name))
        os.mkfifo(os.path.join(out, name))
    expect_error(ctx.run("verify", "--source", src, "--quantized", out, timeout=60),
                 "config.json", "not a regular file")
    expect_error(ctx.run("eval", "--source", src, "--quantized", out, "--data", "random",
                         "--seq-len", "8", timeout=60), "config.json", "not a regular file")


def test_source_shard_shrinking_mid_run_is_named(ctx):
    # The shard is cut after the run mapped it and before it read the weights (a test pause):
    # a named error and no output, not SIGBUS.
    model = ctx.copy_fixture("qwen3moe")
    shard = os.path.join(model, "model.safetensors")
    out = ctx.path("out")
    pause = ctx.path("pause")
    proc = ctx.start("quantize", "--model", model, "--out", out,
                     env=pause_env("checkpoint-opened", pause))
    wait_for_pause(pause, "checkpoint-opened", procs=[proc])
    os.truncate(shard, os.path.getsize(shard) // 2)
    release(pause)
    expect_error(finish(proc, timeout=60), shard, "changed size while it was being read")
    expect_no_output(out)


def test_numeric_flags_are_range_checked(ctx):
    src = ctx.fixture("qwen3moe")
    out = ctx.path("out")
    for size in ("0.5", "inf", "nan", "1e30GB", "0", "-5MB"):
        proc = ctx.run("quantize", "--model", src, "--out", out, "--max-shard-size", size)
        expect_error(proc, "--max-shard-size", size)
        expect_no_output(out)
        check(not os.path.exists(out), f"--max-shard-size {size} was accepted")
    for timeout in ("1e300", "nan", "1e10"):
        proc = ctx.run("quantize", "--model", src, "--out", out, "--timeout", timeout)
        check(proc.returncode not in (0, -6, 134), f"--timeout {timeout}: exit {proc.returncode}")
        check("--timeout" in proc.stderr, f"--timeout {timeout} is not named: {proc.stderr}")
        check(not os.path.exists(out), f"--timeout {timeout} was accepted")
    q = ctx.path("q")
    ctx.ok("quantize", "-q", "--model", src, "--out", q)
    for tolerance in ("nan", "inf", "-1"):
        proc = ctx.run("verify", "--source", src, "--quantized", q, "--tolerance", tolerance)
        expect_error(proc, "--tolerance", "is not a finite non-negative number")
    for flags in (("--hidden", "1000000000000"), ("--experts", "100000"), ("--experts", "60000", "--hidden", "100000"),
                  ("--vocab", "1000000000000"), ("--shards", "1000000")):
        gen = ctx.path("gen")
        proc = ctx.run("generate", "--out", gen, *flags, timeout=60)
        expect_error(proc, flags[-2])
        check(not os.path.exists(gen), f"generate {flags} left a folder")
    # --mtp-layers: out of range, or for a family without multi-token-prediction layers.
    for flags, words in ((("--model-type", "deepseek_v3", "--mtp-layers", "17"), ("--mtp-layers",)),
                         (("--mtp-layers", "1"), ("--mtp-layers", "qwen3_moe", "no multi-token-prediction"))):
        gen = ctx.path("gen")
        proc = ctx.run("generate", "--out", gen, *flags, timeout=60)
        expect_error(proc, *words)
        check(not os.path.exists(gen), f"generate {flags} left a folder")


def instrumented_by_asan(binary):
    """True when the tool was linked with -fsanitize=address (tests/sanitize/run.sh)."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def test_threads_capped_and_thread_failure_named(ctx):
    # --threads beyond the work: capped (the report says how many ran).
    src = ctx.fixture("qwen3moe")
    report = ctx.path("r.json")
    ctx.ok("quantize", "-q", "--model", src, "--out", ctx.path("q"), "--threads", "600",
           "--report-json", report)
    with open(report) as f:
        threads = json.load(f)["ranks"][0]["threads"]
    check(threads <= 117, f"{threads} producer threads for 117 tensors")
    # Threads that cannot start (a 2 GB address space: 8 MB stacks): a named error, no output.
    # One malloc arena, so that the threads that did start do not use up the address space
    # with arenas of their own first (the tests run as root: RLIMIT_NPROC would not bind).
    if instrumented_by_asan(ctx.bin):
        # AddressSanitizer reserves terabytes of shadow address space at start: under a 2 GB
        # RLIMIT_AS it aborts before main. The plain build's run of this test covers the rest.
        print("skipped under AddressSanitizer: the thread-start failure needs RLIMIT_AS")
        return
    model = ctx.path("many")
    ctx.ok("generate", "--out", model, "--layers", "2", "--experts", "512")
    import resource
    limit = 2 << 30
    out = ctx.path("out")
    env = dict(os.environ, MALLOC_ARENA_MAX="1")
    proc = ctx.run("quantize", "--model", model, "--out", out, "--threads", "600", env=env,
                   preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    expect_error(proc, "cannot start producer thread", "--threads")
    expect_no_output(out)
    check(not os.path.exists(out + ".moequant-lock"), "the failed run left its lock")


def test_fewer_calib_samples_than_ranks_mpi(ctx):
    check(ctx.mpiexec, "no mpiexec given")
    src = ctx.fixture("qwen3moe")
    # One sample, two data-parallel ranks: the rank without a sample takes part with nothing.
    out = ctx.path("q1")
    ctx.ok("quantize", "-q", "--model", src, "--out", out, "--calib-data", "random",
           "--calib-samples", "1", "--calib-seq-len", "16", launcher=ctx.mpiexec + ["-np", "2"])
    ctx.ok("verify", "-q", "--source", src, "--quantized", out)
    # Three samples over two ranks, one per batch: every sample is seen (the bytes equal one
    # rank's; a rank's second sample was dropped before).
    one, two = ctx.path("one"), ctx.path("two")
    args = ("--model", src, "--format", "fp8", "--calib-data", "random", "--calib-samples", "3",
            "--calib-seq-len", "16", "--calib-batch", "1", "-q")
    ctx.ok("quantize", *args, "--out", one)
    ctx.ok("quantize", *args, "--out", two, launcher=ctx.mpiexec + ["-np", "2"])
    shard = "model-00001-of-00001.safetensors"
    with open(os.path.join(one, shard), "rb") as a, open(os.path.join(two, shard), "rb") as b:
        check(a.read() == b.read(), "2 ranks calibrated on other samples than 1 rank")


def test_eval_refuses_bad_scales(ctx):
    src = ctx.fixture("qwen3moe")
    good = ctx.path("good")
    ctx.ok("quantize", "-q", "--model", src, "--format", "fp8", "--out", good,
           "--calib-data", "random", "--calib-seq-len", "16")
    shard = os.path.join(good, "model-00001-of-00001.safetensors")
    cases = [("weight_scale", 0.0), ("weight_scale", float("nan")), ("weight_scale", -1.0),
             ("weight_scale", float("inf")), ("input_scale", 0.0)]
    for i, (suffix, value) in enumerate(cases):
        bad = ctx.path(f"bad{i}")
        shutil.copytree(good, bad)
        name = f"model.layers.1.mlp.experts.3.down_proj.{suffix}"
        path = os.path.join(bad, os.path.basename(shard))
        tensors, meta = read_safetensors(path)
        tensors[name][2][:] = struct.pack("<f", value)
        write_safetensors(path, tensors, meta)
        proc = ctx.run("eval", "--source", src, "--quantized", bad, "--data", "random",
                       "--seq-len", "8", "--samples", "2")
        expect_error(proc, name, "zero, negative or non-finite")
        proc = ctx.run("verify", "-q", "--source", src, "--quantized", bad)
        check(proc.returncode == 1 and name in proc.stderr, f"verify missed {suffix} {value}")


def test_exclude_matching_nothing_is_refused(ctx):
    src = ctx.fixture("qwen3moe")
    for pattern in ("model.layers.0.mlp.expert.*", "re:experts\\.[0-9]+\\.down_prj$"):
        out = ctx.path("q")
        proc = ctx.run("quantize", "--model", src, "--format", "int4", "--out", out,
                       "--exclude", "model.layers.1.*", "--exclude", pattern)
        expect_error(proc, "--exclude", pattern, "matches no expert projection", "closest")
        check(not os.path.exists(out), "a run with a pattern matching nothing went ahead")


def test_all_linear_and_kv_cache_options_checked(ctx):
    src = ctx.fixture("qwen3moe")
    out = ctx.path("out")
    # FP8 KV-cache scales are activations: they need calibration data.
    proc = ctx.run("quantize", "--model", src, "--out", out, "--kv-cache", "fp8")
    expect_error(proc, "--kv-cache fp8", "--calib-data")
    expect_no_output(out)
    # ... and a ModelOpt scheme that can declare them.
    proc = ctx.run("quantize", "--model", src, "--out", out, "--kv-cache", "fp8", "--format",
                   "int4", "--calib-data", "random", "--calib-seq-len", "8")
    expect_error(proc, "--kv-cache fp8", "int4")
    expect_no_output(out)
    # MLA caches a compressed latent: refused by name until its rule is written down.
    proc = ctx.run("quantize", "--model", ctx.fixture("deepseek_v3"), "--out", out, "--kv-cache",
                   "fp8", "--calib-data", "random", "--calib-seq-len", "8")
    expect_error(proc, "deepseek_v3", "multi-head latent attention")
    expect_no_output(out)
    proc = ctx.run("quantize", "--model", src, "--out", out, "--calib-all-experts")
    expect_error(proc, "--calib-all-experts", "--calib-data")
    expect_no_output(out)
    # An attention name is not something an experts-only export quantizes: a typo-like pattern.
    proc = ctx.run("quantize", "--model", src, "--out", out, "--exclude",
                   "model.layers.0.self_attn.q_proj")
    expect_error(proc, "--exclude", "self_attn.q_proj", "matches no expert projection")
    expect_no_output(out)
    # With all-linear it names a linear; excluding q_proj takes its q/k/v group out.
    ctx.ok("quantize", "-q", "--model", src, "--out", out, "--quantize", "all-linear",
           "--exclude", "model.layers.0.self_attn.q_proj")
    listing = ctx.ok("inspect", out).stdout
    for proj in ("q_proj", "k_proj", "v_proj"):
        check(re.search(r"model\.layers\.0\.self_attn\.%s\.weight\s+\[[^\]]*\]\s+BF16" % proj, listing),
              f"layer 0 {proj} is not stored unquantized after excluding q_proj")
    check(re.search(r"model\.layers\.0\.self_attn\.o_proj\s+\[[^\]]*\]\s+F8_E4M3", listing),
          "layer 0 o_proj should stay quantized")
    ctx.ok("verify", "-q", "--source", src, "--quantized", out)


def test_gptq_options_checked_mpi(ctx):
    src = ctx.fixture("qwen3moe")
    out = ctx.path("out")
    calib = ["--calib-data", "random", "--calib-samples", "4", "--calib-seq-len", "16"]
    # GPTQ's Hessians come from calibration rows: none without data.
    proc = ctx.run("quantize", "--model", src, "--out", out, "--format", "int4", "--algorithm",
                   "gptq")
    expect_error(proc, "--algorithm gptq", "--calib-data")
    expect_no_output(out)
    # Only the formats whose rounding error GPTQ feeds back (int4, nvfp4).
    for fmt in ("fp8", "fp8_block"):
        proc = ctx.run("quantize", "--model", src, "--out", out, "--format", fmt, "--algorithm",
                       "gptq", *calib)
        expect_error(proc, "--algorithm gptq", fmt)
        expect_no_output(out)
    for damp in ("0", "-0.1", "1.5", "nan"):
        proc = ctx.run("quantize", "--model", src, "--out", out, "--format", "int4", "--algorithm",
                       "gptq", "--gptq-damp", damp, *calib)
        expect_error(proc, "--gptq-damp")
        expect_no_output(out)
    proc = ctx.run("quantize", "--model", src, "--out", out, "--format", "int4", "--algorithm",
                   "gptq", "--gptq-min-tokens", "0", *calib)
    expect_error(proc, "--gptq-min-tokens")
    expect_no_output(out)
    proc = ctx.run("quantize", "--model", src, "--out", out, "--algorithm", "awq", *calib)
    check(proc.returncode != 0 and "--algorithm: awq not in {max,gptq}" in proc.stderr,
          f"--algorithm awq: {proc.returncode} {proc.stderr}")  # the option parser's own line
    expect_no_output(out)
    if ctx.mpiexec:  # an expert split over ETP has no whole H on any rank
        proc = ctx.run("quantize", "--model", src, "--out", out, "--format", "int4", "--algorithm",
                       "gptq", "--etp", "2", *calib, launcher=ctx.mpiexec + ["-np", "2"])
        expect_error(proc, "--algorithm gptq", "--etp 2")
        expect_no_output(out)
    # Experts below --gptq-min-tokens are rounded to nearest and named in the summary.
    proc = ctx.ok("quantize", "--model", src, "--out", out, "--format", "int4", "--algorithm",
                  "gptq", "--gptq-min-tokens", "100000", *calib)
    check("GPTQ: 0 expert(s) solved" in proc.stdout and "rounded to nearest" in proc.stdout,
          f"the summary does not say that every expert fell back: {proc.stdout}")
    ctx.ok("verify", "-q", "--source", src, "--quantized", out)


def test_eval_shows_all_linear_and_kv_cache_cost(ctx):
    src = ctx.fixture("qwen3moe")
    calib = ["--calib-data", "random", "--calib-samples", "8", "--calib-seq-len", "32"]
    folders = []
    for name, extra in (("experts", []), ("all-linear", ["--quantize", "all-linear"]),
                        ("kv", ["--kv-cache", "fp8"])):
        out = ctx.path(name)
        ctx.ok("quantize", "-q", "--model", src, "--out", out, *calib, *extra)
        folders.append(out)
    proc = ctx.ok("eval", "--source", src, "--data", "random", "--samples", "4", "--seq-len", "32",
                  *[a for f in folders for a in ("--quantized", f)])
    rows = {}
    for line in proc.stdout.splitlines():
        for f in folders:
            if line.startswith(f + " ") or line.startswith(os.path.basename(f) + " "):
                rows[f] = line
    check(len(rows) == 3, f"eval printed no row for some folder: {proc.stdout}")
    check("FP8 KV cache" in rows[folders[2]], f"the KV-cache export is not labelled: {rows}")
    kl = {f: float(r.split()[-2]) for f, r in rows.items()}
    # Quantizing more (attention; the KV cache) costs more than the experts alone.
    check(kl[folders[1]] > kl[folders[0]] and kl[folders[2]] > kl[folders[0]],
          f"mean KL does not grow with what is quantized: {kl}")


def test_calibration_sizes_checked_against_config_and_memory(ctx):
    src = ctx.fixture("qwen3moe")  # max_position_embeddings 128
    quantize_bad(ctx, src, "--calib-seq-len 4096", "max_position_embeddings 128",
                 extra=("--calib-data", "random", "--calib-seq-len", "4096"))
    quantize_bad(ctx, src, "--calib-samples 1000000000000", "memory",
                 extra=("--calib-data", "random", "--calib-samples", "1000000000000",
                        "--calib-seq-len", "64"))
    data = write_jsonl(ctx.path("ids.jsonl"), [{"input_ids": list(range(200))}])
    quantize_bad(ctx, src, "--calib-seq-len 200", "max_position_embeddings",
                 extra=("--calib-data", data, "--calib-seq-len", "200"))
    q = ctx.path("q")
    ctx.ok("quantize", "-q", "--model", src, "--out", q)
    proc = ctx.run("eval", "--source", src, "--quantized", q, "--data", "random",
                   "--samples", "1000000000000", "--seq-len", "64")
    expect_error(proc, "--samples 1000000000000", "memory")
    proc = ctx.run("eval", "--source", src, "--quantized", q, "--data", "random",
                   "--seq-len", "4096")
    expect_error(proc, "--seq-len 4096", "max_position_embeddings")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--fixtures", required=True)
    parser.add_argument("--mpiexec", default="")
    parser.add_argument("case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moequant-tooltest-") as tmp:
        ctx = Ctx(os.path.abspath(args.bin), os.path.abspath(args.fixtures),
                  shlex.split(args.mpiexec), tmp)
        try:
            if args.case.startswith("roundtrip:"):
                _, model, fmt = args.case.split(":")
                roundtrip(ctx, model, fmt)
            else:
                fn = globals().get("test_" + args.case)
                check(fn is not None, f"unknown case {args.case!r}")
                fn(ctx)
        except Failure as e:
            print(f"FAILED: {args.case}: {e}", file=sys.stderr)
            return 1
    print(f"PASSED: {args.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
