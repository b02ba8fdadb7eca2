#!/usr/bin/env python3
"""PyTorch's own ways to take the amax of a Qwen3-30B-A3B-shaped expert stack, on the GPU.

The yardsticks that bench_kernels' mq_cuda_multi_amax is compared with (TARGETS.md):
  loop:         [w.abs().amax() for w in ws]  (what Python quantization tools run per tensor)
  foreach_norm: torch._foreach_norm(ws, inf)   (PyTorch's best multi-tensor op)
and a 2 GiB device-to-device copy (b.copy_(a), bytes read + written) measured in the same run.
Same shapes as bench_kernels: per layer 128 experts x (gate, up [768, 2048], down [2048, 768]),
bf16; 1, 2, 4, ... --layers layers. CUDA events, warm-up, median of --repeats.

    python3 bench/amax_torch_baseline.py [--layers 8] [--repeats 10]
"""
import argparse
import statistics
import sys

import torch


def time_ms(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("# no CUDA device: skipped")
        return 0
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    print(f"# PyTorch {torch.__version__} on {props.name}, {props.multi_processor_count} SMs")

    n = 2 << 30
    src = torch.empty(n, dtype=torch.uint8, device=dev).random_(0, 255)
    dst = torch.empty_like(src)
    copy_ms = time_ms(lambda: dst.copy_(src), args.repeats)
    copy_gbs = 2 * n / copy_ms / 1e6
    print(f"# device-to-device copy, 2 GiB: {copy_ms:.3f} ms, {copy_gbs:.1f} GB/s (read + written)")
    del src, dst

    experts, inter, hidden = 128, 768, 2048
    gen = torch.Generator(device=dev).manual_seed(0)
    ws = []
    for layer in range(args.layers):
        for e in range(experts):
            for shape in ((inter, hidden), (inter, hidden), (hidden, inter)):
                scale = 0.01 * (1 + len(ws) % 13)
                ws.append(torch.randn(shape, generator=gen, device=dev, dtype=torch.bfloat16) * scale)

    print("# amax of the stack, bf16; ratio = read GB/s over copy GB/s")
    print(f"# {'layers':>6} {'tensors':>8} {'GB':>7} {'method':>13} {'time(ms)':>10} "
          f"{'read GB/s':>10} {'vs copy':>8} {'check':>6}")
    sweep = []
    layers = 1
    while layers < args.layers:
        sweep.append(layers)
        layers *= 2
    sweep.append(args.layers)
    failed = False
    for layers in sweep:
        sub = ws[: layers * 3 * experts]
        gb = sum(w.numel() * w.element_size() for w in sub) / 1e9

        def loop():
            return [w.abs().amax() for w in sub]

        def foreach():
            return torch._foreach_norm(sub, float("inf"))

        ref = torch.stack(loop()).float()
        ok = torch.equal(torch.stack(foreach()).float(), ref)
        failed |= not ok
        for name, fn in (("abs().amax()", loop), ("_foreach_norm", foreach)):
            ms = time_ms(fn, args.repeats)
            gbs = gb / ms * 1e3
            print(f"  {layers:>6} {len(sub):>8} {gb:>7.2f} {name:>13} {ms:>10.3f} {gbs:>10.1f} "
                  f"{gbs / copy_gbs:>8.3f} {'OK' if ok else 'FAIL':>6}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
