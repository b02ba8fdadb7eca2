#!/usr/bin/env python3
"""The exported input scales of a calibrated export, against an independent plain forward.

Usage: input_amax_reference.py --tool BIN --model FIXTURE_DIR

Pure Python (standard library, float64, loops over tokens, heads and experts), written from the
transformers models (Qwen3-MoE, Qwen2-MoE, Mixtral) and sharing no code with moequant:
  1. its forward of the fixture on transformers' tokens (logit_ids.npy) must give transformers'
     logits (logits_f32.npy) to 1e-4 of their largest magnitude: the reference is right;
  2. the same pass records, per MoE layer and expert, max |x| over the tokens routed to the
     expert (what gate/up see) and max |silu(gate(x)) * up(x)| (what down sees);
  3. moequant quantize --calib-data (those tokens) --format fp8, with --expert-amax per-expert
     and shared, must export input_scale = amax / 448 with that amax (per expert; an expert no
     token reached takes its layer's; shared: the layer's max), to 1e-5 relative;
  4. --quantize all-linear --kv-cache fp8: the input_scale of every dense linear (q/k/v share the
     normed hidden state, o the attention output, a shared expert's or dense MLP's gate/up their
     input and down silu(gate) * up) and k_scale / v_scale (keys after the q/k norm and RoPE,
     values) = amax / 448 of what the same pass saw, to 1e-4 relative;
  5. --calib-all-experts on a prefix of the tokens so short that some experts get no routed
     token: every expert's fc1 input amax is that of its layer's input over ALL tokens and its
     fc2 amax that of its own silu(gate) * up over all tokens (per expert), while later layers
     still see the routed outputs (their amax would differ otherwise), to 1e-5 relative.
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile


def read_npy(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<H", b[8:10])[0]
    header = b[10:10 + n].decode()
    shape = tuple(int(x) for x in header.split("(")[1].split(")")[0].split(",") if x.strip())
    fmt = "<q" if "'<i8'" in header else "<f"
    size = struct.calcsize(fmt)
    data = b[10 + n:]
    vals = [struct.unpack_from(fmt, data, i * size)[0] for i in range(len(data) // size)]
    return shape, vals


def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        raw = b[8 + n + s:8 + n + e]
        assert info["dtype"] == "BF16", name
        vals = [struct.unpack("<f", struct.pack("<I", h << 16))[0]
                for (h,) in struct.iter_unpack("<H", raw)]
        out[name] = (info["shape"], vals)
    return out


class Weights:
    def __init__(self, tensors):
        self.t = tensors

    def has(self, name):
        return name in self.t

    def vec(self, name):
        return self.t[name][1]

    def mat(self, name):  # rows of [out, in]
        (rows, cols), v = self.t[name]
        return [v[r * cols:(r + 1) * cols] for r in range(rows)]


def matvec(m, x):
    return [sum(a * b for a, b in zip(row, x)) for row in m]


def rms_norm(x, w, eps):
    s = math.sqrt(sum(v * v for v in x) / len(x) + eps)
    return [wi * (v / s) for wi, v in zip(w, x)]


def silu(v):
    return v / (1.0 + math.exp(-v))


def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [v / s for v in e]


def forward(cfg, W, ids, observe, dense_obs=lambda *a: None, kv_obs=lambda *a: None,
            all_obs=None):
    """observe(layer, expert, fc1 amax, fc2 amax) per routed token; dense_obs(layer, group,
    amax) per token at each dense linear's input; kv_obs(layer, 'k'|'v', amax) per cached key /
    value; all_obs(layer, expert, fc1 amax, fc2 amax) for every expert on every token."""
    mt = cfg["model_type"]
    H = cfg["hidden_size"]
    nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    D = cfg.get("head_dim") or H // nh
    eps = cfg["rms_norm_eps"]
    theta = (cfg.get("rope_parameters") or {}).get("rope_theta") or cfg.get("rope_theta", 10000.0)
    E = cfg.get("num_experts") or cfg["num_local_experts"]
    k = cfg["num_experts_per_tok"]
    normalize = True if mt == "mixtral" else bool(cfg.get("norm_topk_prob"))
    block = "block_sparse_moe" if mt == "mixtral" else "mlp"
    projs = ("w1", "w3", "w2") if mt == "mixtral" else ("gate_proj", "up_proj", "down_proj")
    dense = set(cfg.get("mlp_only_layers") or [])
    embed = W.mat("model.embed_tokens.weight")
    inv = [1.0 / theta ** (2 * i / D) for i in range(D // 2)]
    logits = []
    for seq in ids:
        T = len(seq)
        h = [list(embed[t]) for t in seq]
        for L in range(cfg["num_hidden_layers"]):
            p = "model.layers.%d." % L
            # attention
            xs = [rms_norm(v, W.vec(p + "input_layernorm.weight"), eps) for v in h]
            q_w, k_w, v_w = (W.mat(p + "self_attn.%s_proj.weight" % n) for n in "qkv")
            o_w = W.mat(p + "self_attn.o_proj.weight")
            bias = {n: W.vec(p + "self_attn.%s_proj.bias" % n) if W.has(p + "self_attn.%s_proj.bias" % n)
                    else None for n in "qkv"}
            qn = W.vec(p + "self_attn.q_norm.weight") if W.has(p + "self_attn.q_norm.weight") else None
            kn = W.vec(p + "self_attn.k_norm.weight") if W.has(p + "self_attn.k_norm.weight") else None

            def heads(m, b, n, norm, x):
                y = matvec(m, x)
                if b:
                    y = [a + c for a, c in zip(y, b)]
                hs = [y[i * D:(i + 1) * D] for i in range(n)]
                return [rms_norm(v, norm, eps) for v in hs] if norm else hs

            def rope(v, pos):
                out = []
                for j in range(D):
                    f = pos * inv[j % (D // 2)]
                    rot = -v[j + D // 2] if j < D // 2 else v[j - D // 2]
                    out.append(v[j] * math.cos(f) + rot * math.sin(f))
                return out

            Q = [[rope(v, t) for v in heads(q_w, bias["q"], nh, qn, xs[t])] for t in range(T)]
            K = [[rope(v, t) for v in heads(k_w, bias["k"], nkv, kn, xs[t])] for t in range(T)]
            V = [heads(v_w, bias["v"], nkv, None, xs[t]) for t in range(T)]
            for t in range(T):
                dense_obs(L, "self_attn.q_proj", max(abs(v) for v in xs[t]))
                kv_obs(L, "k", max(abs(v) for hv in K[t] for v in hv))
                kv_obs(L, "v", max(abs(v) for hv in V[t] for v in hv))
            for t in range(T):
                att = []
                for hd in range(nh):
                    g = hd // (nh // nkv)
                    scores = [sum(a * b for a, b in zip(Q[t][hd], K[s][g])) / math.sqrt(D)
                              for s in range(t + 1)]
                    pr = softmax(scores)
                    att += [sum(pr[s] * V[s][g][j] for s in range(t + 1)) for j in range(D)]
                dense_obs(L, "self_attn.o_proj", max(abs(v) for v in att))
                h[t] = [a + b for a, b in zip(h[t], matvec(o_w, att))]
            # MLP
            post = p + "post_attention_layernorm.weight"
            for t in range(T):
                x = rms_norm(h[t], W.vec(post), eps)
                if L in dense:
                    m = p + "mlp."
                    g, u = matvec(W.mat(m + "gate_proj.weight"), x), matvec(W.mat(m + "up_proj.weight"), x)
                    mid = [silu(a) * b for a, b in zip(g, u)]
                    dense_obs(L, "mlp.gate_proj", max(abs(v) for v in x))
                    dense_obs(L, "mlp.down_proj", max(abs(v) for v in mid))
                    y = matvec(W.mat(m + "down_proj.weight"), mid)
                else:
                    b = p + block + "."
                    probs = softmax(matvec(W.mat(b + "gate.weight"), x))
                    top = sorted(range(E), key=lambda e: -probs[e])[:k]
                    if all_obs:
                        for e in range(E):
                            ep = b + "experts.%d." % e
                            g = matvec(W.mat(ep + projs[0] + ".weight"), x)
                            u = matvec(W.mat(ep + projs[1] + ".weight"), x)
                            all_obs(L, e, max(abs(v) for v in x),
                                    max(abs(silu(a) * c) for a, c in zip(g, u)))
                    wsum = sum(probs[e] for e in top)
                    y = [0.0] * H
                    for e in top:
                        ep = b + "experts.%d." % e
                        g = matvec(W.mat(ep + projs[0] + ".weight"), x)
                        u = matvec(W.mat(ep + projs[1] + ".weight"), x)
                        mid = [silu(a) * c for a, c in zip(g, u)]
                        observe(L, e, max(abs(v) for v in x), max(abs(v) for v in mid))
                        out = matvec(W.mat(ep + projs[2] + ".weight"), mid)
                        wt = probs[e] / wsum if normalize else probs[e]
                        y = [a + wt * c for a, c in zip(y, out)]
                    if W.has(b + "shared_expert_gate.weight"):
                        se = b + "shared_expert."
                        g = matvec(W.mat(se + "gate_proj.weight"), x)
                        u = matvec(W.mat(se + "up_proj.weight"), x)
                        s_mid = [silu(a) * c for a, c in zip(g, u)]
                        dense_obs(L, "mlp.shared_expert.gate_proj", max(abs(v) for v in x))
                        dense_obs(L, "mlp.shared_expert.down_proj", max(abs(v) for v in s_mid))
                        s_out = matvec(W.mat(se + "down_proj.weight"), s_mid)
                        gate = 1.0 / (1.0 + math.exp(-matvec(W.mat(b + "shared_expert_gate.weight"), x)[0]))
                        y = [a + gate * c for a, c in zip(y, s_out)]
                h[t] = [a + c for a, c in zip(h[t], y)]
        head = W.mat("lm_head.weight")
        for t in range(T):
            logits.append(matvec(head, rms_norm(h[t], W.vec("model.norm.weight"), eps)))
    return logits


def exported_scales(folder, suffix):
    """module -> the float32 scalar `suffix` beside it ("input_scale", "k_scale", "v_scale")."""
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    out = {}
    for fn in files:
        with open(os.path.join(folder, fn), "rb") as f:
            b = f.read()
        n = struct.unpack("<Q", b[:8])[0]
        for name, info in json.loads(b[8:8 + n]).items():
            if name.endswith("." + suffix):
                s = info["data_offsets"][0]
                out[name[:-len(suffix) - 1]] = struct.unpack("<f", b[8 + n + s:8 + n + s + 4])[0]
    return out


def running_max(table):
    def add(*key_and_value):
        *key, v = key_and_value
        key = tuple(key)
        table[key] = max(table.get(key, 0.0), v)
    return add


def running_max_pair(table):
    def add(layer, e, fc1, fc2):
        a, b = table.get((layer, e), (0.0, 0.0))
        table[(layer, e)] = (max(a, fc1), max(b, fc2))
    return add


def close(got, want, rel):
    return abs(got - want) <= rel * abs(want)


def check_dense_and_kv(args, cfg, W, ids, seq_len, tmp):
    """Step 4: all-linear input scales and KV-cache scales against the plain forward."""
    dense, kv = {}, {}
    forward(cfg, W, ids, lambda *a: None, running_max(dense), running_max(kv))
    data = os.path.join(tmp, "ids4.jsonl")
    with open(data, "w") as f:
        for s in ids:
            f.write(json.dumps({"input_ids": s}) + "\n")
    out = os.path.join(tmp, "all-linear")
    subprocess.run([args.tool, "quantize", "--model", args.model, "--format", "fp8", "--out", out,
                    "-q", "--calib-data", data, "--calib-seq-len", str(seq_len), "--quantize",
                    "all-linear", "--kv-cache", "fp8"], check=True)
    scales = exported_scales(out, "input_scale")
    # q/k/v share one input (and one scale); so do gate and up.
    members = {"self_attn.q_proj": ("q_proj", "k_proj", "v_proj"), "self_attn.o_proj": ("o_proj",),
               "mlp.gate_proj": ("gate_proj", "up_proj"), "mlp.down_proj": ("down_proj",),
               "mlp.shared_expert.gate_proj": ("gate_proj", "up_proj"),
               "mlp.shared_expert.down_proj": ("down_proj",)}
    failures = checked = 0
    for (layer, group), amax in sorted(dense.items()):
        parent = "model.layers.%d.%s" % (layer, group.rsplit(".", 1)[0])
        for leaf in members[group]:
            module = parent + "." + leaf
            got = scales.get(module, math.nan) * 448.0
            checked += 1
            if not close(got, amax, 1e-4):
                failures += 1
                print("FAILED: %s input amax %.9g, the plain forward says %.9g" % (module, got, amax))
    for suffix, which, proj in (("k_scale", "k", "k_proj"), ("v_scale", "v", "v_proj")):
        got_all = exported_scales(out, suffix)
        for layer in range(cfg["num_hidden_layers"]):
            module = "model.layers.%d.self_attn.%s" % (layer, proj)
            got, want = got_all.get(module, math.nan) * 448.0, kv[(layer, which)]
            checked += 1
            if not close(got, want, 1e-4):
                failures += 1
                print("FAILED: %s.%s amax %.9g, the plain forward says %.9g"
                      % (module, suffix, got, want))
    print("all-linear + kv-cache: %d exported scales equal the plain forward's amax" % checked)
    return failures


def check_all_experts(args, cfg, W, ids, tmp):
    """Step 5: --calib-all-experts on a few tokens."""
    short = [ids[0][:3]]
    routed, every = {}, {}
    forward(cfg, W, short, running_max_pair(routed), all_obs=running_max_pair(every))
    E = cfg.get("num_experts") or cfg["num_local_experts"]
    layers = sorted({l for l, _ in every})
    silent = [(l, e) for l in layers for e in range(E) if (l, e) not in routed]
    if not silent:
        print("FAILED: every expert got a routed token; the test needs some that did not")
        return 1
    data = os.path.join(tmp, "ids5.jsonl")
    with open(data, "w") as f:
        f.write(json.dumps({"input_ids": short[0]}) + "\n")
    out = os.path.join(tmp, "all-experts")
    subprocess.run([args.tool, "quantize", "--model", args.model, "--format", "fp8", "--out", out,
                    "-q", "--calib-data", data, "--calib-seq-len", "3", "--expert-amax",
                    "per-expert", "--calib-all-experts"], check=True)
    scales = exported_scales(out, "input_scale")
    mt = cfg["model_type"]
    block = "block_sparse_moe" if mt == "mixtral" else "mlp"
    projs = ("w1", "w3", "w2") if mt == "mixtral" else ("gate_proj", "up_proj", "down_proj")
    failures = checked = 0
    for (l, e), (fc1, fc2) in sorted(every.items()):
        base = "model.layers.%d.%s.experts.%d." % (l, block, e)
        for proj, amax in ((projs[0], fc1), (projs[1], fc1), (projs[2], fc2)):
            got = scales[base + proj] * 448.0
            checked += 1
            if not close(got, amax, 1e-5):
                failures += 1
                print("FAILED: --calib-all-experts %s%s input amax %.9g, every token gives %.9g"
                      % (base, proj, got, amax))
    print("calib-all-experts: %d input scales equal the all-token amax (%d experts got no routed "
          "token)" % (checked, len(silent)))
    return failures


def exported_input_scales(folder):
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    out = {}
    for fn in files:
        with open(os.path.join(folder, fn), "rb") as f:
            b = f.read()
        n = struct.unpack("<Q", b[:8])[0]
        for name, info in json.loads(b[8:8 + n]).items():
            if name.endswith(".input_scale"):
                s = info["data_offsets"][0]
                out[name[:-len(".input_scale")]] = struct.unpack("<f", b[8 + n + s:8 + n + s + 4])[0]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    W = Weights(read_safetensors(os.path.join(args.model, "model.safetensors")))
    shape, flat = read_npy(os.path.join(args.model, "logit_ids.npy"))
    ids = [flat[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]
    _, ref = read_npy(os.path.join(args.model, "logits_f32.npy"))
    per_expert = {}

    def observe(layer, e, fc1, fc2):
        a, b = per_expert.get((layer, e), (0.0, 0.0))
        per_expert[(layer, e)] = (max(a, fc1), max(b, fc2))

    logits = [v for row in forward(cfg, W, ids, observe) for v in row]
    scale = max(abs(v) for v in ref)
    diff = max(abs(a - b) for a, b in zip(logits, ref))
    print("plain forward vs transformers: max |diff| %.3g of max |logit| %.3g" % (diff, scale))
    failures = 0
    if diff > 1e-4 * scale:
        print("FAILED: the independent forward does not reproduce transformers' logits")
        return 1

    mt = cfg["model_type"]
    block = "block_sparse_moe" if mt == "mixtral" else "mlp"
    projs = ("w1", "w3", "w2") if mt == "mixtral" else ("gate_proj", "up_proj", "down_proj")
    E = cfg.get("num_experts") or cfg["num_local_experts"]
    layers = sorted({l for l, _ in per_expert})
    shared = {l: (max(per_expert.get((l, e), (0, 0))[0] for e in range(E)),
                  max(per_expert.get((l, e), (0, 0))[1] for e in range(E))) for l in layers}
    with tempfile.TemporaryDirectory(prefix="mq-input-amax-") as tmp:
        data = os.path.join(tmp, "ids.jsonl")
        with open(data, "w") as f:
            for s in ids:
                f.write(json.dumps({"input_ids": s}) + "\n")
        for mode in ("per-expert", "shared"):
            out = os.path.join(tmp, mode)
            subprocess.run([args.tool, "quantize", "--model", args.model, "--format", "fp8",
                            "--out", out, "-q", "--calib-data", data, "--calib-seq-len",
                            str(shape[1]), "--expert-amax", mode], check=True)
            scales = exported_input_scales(out)
            checked = 0
            for l in layers:
                for e in range(E):
                    want = per_expert.get((l, e)) if mode == "per-expert" else None
                    want = want or shared[l]  # no token: the layer's amax
                    base = "model.layers.%d.%s.experts.%d." % (l, block, e)
                    for proj, amax in ((projs[0], want[0]), (projs[1], want[0]), (projs[2], want[1])):
                        got = scales[base + proj] * 448.0
                        checked += 1
                        if abs(got - amax) > 1e-5 * amax:
                            failures += 1
                            print("FAILED: %s %s%s input amax %.9g, the plain forward says %.9g"
                                  % (mode, base, proj, got, amax))
            print("%s: %d exported input scales equal the plain forward's amax" % (mode, checked))
        failures += check_dense_and_kv(args, cfg, W, ids, shape[1], tmp)
        failures += check_all_experts(args, cfg, W, ids, tmp)
    print("input_amax_reference: %s" % ("FAILED" if failures else "OK"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
