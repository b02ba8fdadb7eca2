#!/usr/bin/env python3
"""Train a small Qwen3-MoE language model, seeded and in minutes, to measure quantization accuracy on.

Random-weight fixtures say nothing about accuracy, so this trains a real (if tiny) Qwen3-MoE with
transformers on text every Python install has: the standard library's *.py sources (plus the
installed packages' METADATA descriptions), tokenized with a real tokenizer.json. Files are split
deterministically (every --holdout-every-th file is held out). Writes to --out: config.json and
model.safetensors (bf16, per-expert model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight),
tokenizer.json, heldout.jsonl and calib.jsonl ({"input_ids": [...]} per line), train_report.json.

    python3 bench/train_tiny_moe.py --tokenizer .tok/llama2/tokenizer.json --out /tmp/tiny-moe
    python3 bench/train_tiny_moe.py --tokenizer .tok/llama2/tokenizer.json --out /tmp/t --dry-run
"""
import argparse
import json
import math
import os
import platform
import random
import shutil
import site
import sys
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the GPU machine has no network; never try it

import numpy as np
import safetensors
import safetensors.torch
import tokenizers
import torch
import torch.nn.functional as F
import transformers
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

# --dry-run: a model and run small enough to smoke-test the whole path in seconds.
DRY = dict(layers=2, hidden=64, experts=4, top_k=2, moe_intermediate=64, intermediate=128, heads=4,
           kv_heads=2, head_dim=16, seq_len=64, batch=4, steps=6, minutes=0.0, warmup=2, log_every=1,
           heldout_samples=8, calib_samples=8, max_corpus_mb=1.0)


def die(msg):
    print(f"train_tiny_moe: error: {msg}", file=sys.stderr)
    sys.exit(1)


def corpus_files(pkg_docs):
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages"}  # venv/conda trees nest them under the stdlib
    rel = {p: p.relative_to(stdlib).as_posix() for p in stdlib.rglob("*.py")
           if not skip & set(p.relative_to(stdlib).parts)}
    files = sorted(rel, key=rel.get)
    if pkg_docs:
        roots = [*getattr(site, "getsitepackages", list)(), site.getusersitepackages()]
        files += sorted({m.resolve() for r in roots if Path(r).is_dir()
                         for m in Path(r).glob("*.dist-info/METADATA")})
    return files


def read_corpus(files, max_chars):
    texts, total = [], 0
    for p in files:
        try:
            if p.stat().st_size > 1 << 20:  # generated tables and data, not code or prose
                continue
            t = p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if t.strip():
            texts.append(t)
            total += len(t)
        if total >= max_chars:
            break
    return texts


def pieces(text, max_chars=4000):
    # Llama-2's tokenizer.json has no pre-tokenizer: BPE sees a whole string as one word and gets
    # very slow on long inputs, so encode at most max_chars of whole lines at a time (the cost: a
    # leading "▁" on each piece's first token, once per few kB).
    start = 0
    while start < len(text):
        end = min(len(text), start + max_chars)
        if end < len(text) and (nl := text.rfind("\n", start, end)) > start:
            end = nl + 1
        yield text[start:end]
        start = end


def tokenize(tok, texts, bos, eos):
    flat, starts = [], set()
    for t in texts:
        starts.add(len(flat))
        flat.extend(pieces(t))
    parts = []
    for b in range(0, len(flat), 8192):
        for i, enc in enumerate(tok.encode_batch(flat[b:b + 8192], add_special_tokens=False), b):
            if i in starts:  # a file begins: close the previous one, open this one
                parts.append(np.array((eos if i else []) + bos, dtype=np.int64))
            parts.append(np.asarray(enc.ids, dtype=np.int64))
    parts.append(np.array(eos, dtype=np.int64))
    return np.concatenate(parts)


def to_seqs(stream, seq_len):
    n = len(stream) // seq_len
    return stream[:n * seq_len].reshape(n, seq_len)


def spread(n, k):  # k indices evenly over range(n): a sample of every part of the split
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(np.int64))


def lr_at(step, total, warmup, peak):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * p)))  # cosine down to peak/10


def set_experts(model, impl):
    try:
        if hasattr(model, "set_experts_implementation"):
            model.set_experts_implementation(impl)
        else:
            model.config._experts_implementation = impl
    except Exception as e:  # an older transformers, or a kernel this machine lacks
        print(f"could not set experts implementation {impl}: {e}")
    return getattr(model.config, "_experts_implementation", "eager")


def choose_experts(model, want, dev, vocab, amp):
    if want != "auto":
        return set_experts(model, want)
    impl = getattr(model.config, "_experts_implementation", "eager")
    if impl != "eager":  # transformers' default (grouped_mm): keep it only if it trains here
        x = torch.randint(0, vocab, (2, 32), generator=torch.Generator().manual_seed(0)).to(dev)
        try:
            with amp():
                logits = model(input_ids=x, use_cache=False).logits
            logits.float().mean().backward()
        except Exception as e:  # e.g. no torch._grouped_mm kernel for fp32 under autocast
            print(f"experts implementation {impl} failed a training step ({type(e).__name__}: {e}); "
                  "using eager")
            impl = set_experts(model, "eager")
        model.zero_grad(set_to_none=True)
    return impl


@torch.no_grad()
def evaluate(model, seqs, amp, top_k, n_experts, batch=16):
    model.eval()
    nll, n, load = 0.0, 0, None
    for i in range(0, len(seqs), batch):
        x = seqs[i:i + batch]
        with amp():
            out = model(input_ids=x, use_cache=False, output_router_logits=True)
        logits = out.logits[:, :-1].float()
        nll += F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten(), reduction="sum").item()
        n += x[:, 1:].numel()
        rl = out.router_logits
        if isinstance(rl, (tuple, list)) and rl:  # tokens per expert and layer: dead ones go uncalibrated
            c = torch.stack([torch.bincount(r.topk(top_k, dim=-1).indices.flatten(), minlength=n_experts)
                             for r in rl]).cpu()
            load = c if load is None else load + c
    model.train()
    return nll / n, load


def ensure_per_expert(out, model, a):
    """transformers 5 keeps experts fused in memory (gate_up_proj [E, 2I, H], down_proj [E, H, I])
    and save_pretrained reverts qwen3_moe's conversion mapping to per-expert tensors; check that,
    and split them here if some version wrote the fused ones."""
    files = sorted(out.glob("*.safetensors"))
    keys = set()
    for f in files:
        with safetensors.safe_open(str(f), framework="pt") as s:
            keys |= set(s.keys())
    want = {f"model.layers.{l}.mlp.experts.{e}.{w}_proj.weight"
            for l in range(a.layers) for e in range(a.experts) for w in ("gate", "up", "down")}
    if want <= keys:
        return "save_pretrained"
    fused = [f"model.layers.{l}.mlp.experts.{n}" for l in range(a.layers) for n in ("gate_up_proj", "down_proj")]
    if len(files) != 1 or not set(fused) <= keys:
        die(f"unexpected expert tensors in {out}: {sorted(k for k in keys if '.experts.' in k)[:6]}")
    sd, I, H = safetensors.torch.load_file(str(files[0])), a.moe_intermediate, a.hidden
    for l in range(a.layers):
        ex = model.model.layers[l].mlp.experts
        gu, dn = sd.pop(fused[2 * l]), sd.pop(fused[2 * l + 1])
        if getattr(ex, "is_transposed", False) or getattr(ex, "experts_are_transposed", False):
            gu, dn = gu.transpose(1, 2), dn.transpose(1, 2)
        if gu.shape != (a.experts, 2 * I, H) or dn.shape != (a.experts, H, I):
            die(f"layer {l}: fused expert shapes {tuple(gu.shape)}, {tuple(dn.shape)} not understood")
        for e in range(a.experts):
            base = f"model.layers.{l}.mlp.experts.{e}."
            sd[base + "gate_proj.weight"] = gu[e, :I].contiguous()  # gate first: chunk(2) in forward
            sd[base + "up_proj.weight"] = gu[e, I:].contiguous()
            sd[base + "down_proj.weight"] = dn[e].contiguous()
    safetensors.torch.save_file(sd, str(files[0]), metadata={"format": "pt"})
    return "split from fused tensors by train_tiny_moe.py"


def write_jsonl(path, seqs):
    with open(path, "w") as f:
        for s in seqs:
            f.write(json.dumps({"input_ids": s.tolist()}) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arg = ap.add_argument
    arg("--tokenizer", required=True, help="tokenizer.json (the Llama-2 one: .tok/llama2/tokenizer.json)")
    arg("--out", required=True, help="output directory")
    for name, default in [("seed", 0), ("layers", 4), ("hidden", 256), ("experts", 16), ("top-k", 4),
                          ("moe-intermediate", 256), ("intermediate", 1024), ("heads", 8),
                          ("kv-heads", 4), ("head-dim", 32), ("seq-len", 256), ("batch", 32),
                          ("steps", 100000), ("warmup", 100), ("log-every", 50), ("holdout-every", 20),
                          ("heldout-samples", 128), ("calib-samples", 128)]:
        arg(f"--{name}", type=int, default=default)
    for name, default in [("lr", 3e-3), ("weight-decay", 0.1), ("aux-coef", 0.01), ("minutes", 4.0),
                          ("max-corpus-mb", 64.0)]:
        arg(f"--{name}", type=float, default=default)
    arg("--no-pkg-docs", action="store_true", help="stdlib sources only, no site-packages METADATA")
    arg("--tie-embeddings", action="store_true",
        help="lm_head shares the embedding (a third smaller checkpoint with a 32k vocabulary)")
    arg("--experts-impl", choices=["auto", "eager", "grouped_mm"], default="auto",
        help="auto: transformers' default if a training step works with it, else eager")
    arg("--dry-run", action="store_true", help="tiny model, few steps: a smoke test in seconds")
    a = ap.parse_args()
    if a.dry_run:
        vars(a).update(DRY)
    if a.top_k > a.experts or a.heads % a.kv_heads or a.holdout_every < 2:
        die("need --top-k <= --experts, --heads a multiple of --kv-heads, --holdout-every >= 2")
    t_all = time.time()

    tok_path = Path(a.tokenizer)
    if not tok_path.is_file():
        die(f"tokenizer not found: {tok_path} (the Llama-2 tokenizer.json, .tok/llama2/tokenizer.json)")
    tok = tokenizers.Tokenizer.from_file(str(tok_path))
    vocab = tok.get_vocab_size(with_added_tokens=True)
    bos_id, eos_id = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    bos, eos = [bos_id] if bos_id is not None else [], [eos_id] if eos_id is not None else []

    texts = read_corpus(corpus_files(not a.no_pkg_docs), int(a.max_corpus_mb * 1e6))
    if not texts:
        die(f"empty corpus: no readable *.py under {sysconfig.get_paths()['stdlib']}")
    held_txt = texts[::a.holdout_every]
    train_txt = [t for i, t in enumerate(texts) if i % a.holdout_every]
    T, B = a.seq_len, a.batch
    train, held = to_seqs(tokenize(tok, train_txt, bos, eos), T), to_seqs(tokenize(tok, held_txt, bos, eos), T)
    if len(train) < B or len(held) == 0:
        die(f"corpus too small: {len(train)} train, {len(held)} held-out sequences of {T} tokens")
    corpus = dict(files=len(texts), train_files=len(train_txt), heldout_files=len(held_txt),
                  chars=sum(map(len, texts)), train_tokens=int(train.size), heldout_tokens=int(held.size))
    held, calib = held[spread(len(held), a.heldout_samples)], train[spread(len(train), a.calib_samples)]
    print(f"corpus: {corpus}; {time.time() - t_all:.0f}s", flush=True)

    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    amp = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    sync = lambda: torch.cuda.synchronize() if dev.type == "cuda" else None
    # Every layer MoE (decoder_sparse_step 1, no mlp_only_layers); intermediate_size goes unused.
    # The router's Switch-style load-balancing loss (transformers' load_balancing_loss_func, added
    # by the model when output_router_logits) at 10x Qwen3's 0.001: a few minutes give the router
    # little time to spread tokens, and a dead expert would leave its quantization uncalibrated.
    # The saved config keeps output_router_logits off; only the training forward asks for it.
    cfg = Qwen3MoeConfig(
        vocab_size=vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
        num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
        head_dim=a.head_dim, max_position_embeddings=max(4096, T), tie_word_embeddings=a.tie_embeddings,
        num_experts=a.experts, num_experts_per_tok=a.top_k, moe_intermediate_size=a.moe_intermediate,
        norm_topk_prob=True, decoder_sparse_step=1, output_router_logits=False,
        router_aux_loss_coef=a.aux_coef, bos_token_id=bos_id, eos_token_id=eos_id)
    model = Qwen3MoeForCausalLM(cfg).to(dev)
    impl = choose_experts(model, a.experts_impl, dev, vocab, amp)
    params = sum(p.numel() for p in model.parameters())
    expert_params = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    print(f"model: {params / 1e6:.1f} M parameters ({expert_params / 1e6:.1f} M in experts), "
          f"experts implementation {impl}, {dev}", flush=True)

    groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": a.weight_decay},
              {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), fused=dev.type == "cuda")
    train_t = torch.from_numpy(train).to(dev)
    gen = torch.Generator().manual_seed(a.seed + 1)
    order, pos = torch.randperm(len(train), generator=gen), 0
    budget = a.minutes * 60 if a.minutes > 0 else math.inf
    total, step, lr, train_loss = a.steps, 0, a.lr, float("nan")
    run = torch.zeros(2, device=dev)
    run_n, t_start = 0, time.time()
    t_log = t_start
    model.train()
    while step < total and time.time() - t_start < budget:
        if pos + B > len(order):
            order, pos = torch.randperm(len(train), generator=gen), 0
        x = train_t[order[pos:pos + B].to(dev)]
        pos += B
        lr = lr_at(step, total, min(a.warmup, max(1, total // 10)), a.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        with amp():
            out = model(input_ids=x, use_cache=False, output_router_logits=a.aux_coef > 0)
        lm = F.cross_entropy(out.logits[:, :-1].flatten(0, 1).float(), x[:, 1:].flatten())
        aux = out.aux_loss if a.aux_coef > 0 and torch.is_tensor(out.aux_loss) else torch.zeros((), device=dev)
        opt.zero_grad(set_to_none=True)
        (lm + a.aux_coef * aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        run += torch.stack([lm.detach(), aux.detach().float()])
        run_n += 1
        if step == 10:
            sync()
            t10 = time.time()
        if step == 30 and budget < math.inf:  # plan the cosine to end when the time does
            sync()
            per = (time.time() - t10) / 20
            total = min(a.steps, step + int((budget - (time.time() - t_start)) / per))
            print(f"{per * 1e3:.0f} ms/step: {total} steps fit in --minutes {a.minutes}", flush=True)
        if step % a.log_every == 0 or step >= total or time.time() - t_start >= budget:
            l, x_aux = (run / run_n).tolist()
            now = time.time()
            print(f"step {step:6d}/{total} loss {l:.4f} aux {x_aux:.3f} lr {lr:.2e} {now - t_start:5.0f}s "
                  f"{run_n * B * T / (now - t_log) / 1e3:.0f}k tok/s", flush=True)
            train_loss, run_n, t_log = l, 0, now
            run.zero_()
    train_secs = time.time() - t_start

    with torch.no_grad():  # evaluate exactly the bf16 weights that are saved; buffers (RoPE) stay fp32
        for p in model.parameters():
            p.data = p.data.to(torch.bfloat16)
    held_t = torch.from_numpy(held).to(dev)
    h_loss, load = evaluate(model, held_t, amp, a.top_k, a.experts)

    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("model*.safetensors*"):  # an earlier run's shards would be mixed in
        stale.unlink()
    model.save_pretrained(str(out_dir))
    layout = ensure_per_expert(out_dir, model, a)
    shutil.copyfile(tok_path, out_dir / "tokenizer.json")
    write_jsonl(out_dir / "heldout.jsonl", held)
    write_jsonl(out_dir / "calib.jsonl", calib)

    # Reload what was written: a wrong expert layout would move the loss by far more than 0.05.
    reloaded = Qwen3MoeForCausalLM.from_pretrained(str(out_dir), dtype=torch.bfloat16).to(dev)
    set_experts(reloaded, impl)
    k = min(16, len(held_t))
    mem_loss = evaluate(model, held_t[:k], amp, a.top_k, a.experts)[0]
    disk_loss = evaluate(reloaded, held_t[:k], amp, a.top_k, a.experts)[0]
    if abs(mem_loss - disk_loss) > 0.05:
        die(f"reloaded checkpoint disagrees: held-out loss {disk_loss:.4f} vs {mem_loss:.4f} in memory")

    share = None if load is None else (load.float() / load.sum(1, keepdim=True)).tolist()
    report = dict(
        steps=step, planned_steps=total, train_seconds=round(train_secs, 1),
        total_seconds=round(time.time() - t_all, 1), final_train_loss=train_loss, heldout_loss=h_loss,
        heldout_ppl=math.exp(h_loss), heldout_sequences=len(held), calib_sequences=len(calib),
        reload_check=dict(memory_loss=mem_loss, reloaded_loss=disk_loss), parameters=params,
        expert_parameters=expert_params, seed=a.seed, experts_implementation=impl,
        expert_tensors=layout, expert_token_share_per_layer=[[round(s, 4) for s in r] for r in share or []],
        corpus=corpus, tokenizer=dict(path=str(tok_path), vocab_size=vocab, bos=bos_id, eos=eos_id),
        args=vars(a), device=torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
        versions=dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
                      transformers=transformers.__version__, tokenizers=tokenizers.__version__,
                      safetensors=safetensors.__version__, numpy=np.__version__))
    (out_dir / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    if share:
        print("expert token share per layer (min..max): " +
              ", ".join(f"{min(r):.3f}..{max(r):.3f}" for r in share))
    print(f"tiny-moe: held-out ppl {math.exp(h_loss):.2f} (loss {h_loss:.4f}; uniform {vocab}) after "
          f"{step} steps, {train_secs:.0f}s training, {time.time() - t_all:.0f}s total -> {out_dir}")


if __name__ == "__main__":
    main()
