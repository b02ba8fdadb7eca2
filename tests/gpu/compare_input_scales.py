#!/usr/bin/env python3
"""Compares two exports of one model: how many weight tensors are byte-identical and how far
apart the input_scale values are (max relative difference). Used on the GPU machine to compare
CUDA with CPU calibration, and TF32 with full float32 calibration.

    compare_input_scales.py EXPORT_A EXPORT_B [LABEL]
"""
import json
import struct
import sys


def tensors(folder):
    out = {}
    index = json.load(open(folder + "/model.safetensors.index.json"))["weight_map"]
    for name in sorted(set(index.values())):
        with open(folder + "/" + name, "rb") as f:
            data = f.read()
        n = struct.unpack("<Q", data[:8])[0]
        for key, v in json.loads(data[8:8 + n]).items():
            if key != "__metadata__":
                a, b = v["data_offsets"]
                out[key] = data[8 + n + a:8 + n + b]
    return out


def main():
    a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
    label = sys.argv[3] if len(sys.argv) > 3 else ""
    if set(a) != set(b):
        sys.exit(f"{label}: the exports hold different tensors")
    weights = [k for k in a if not k.endswith("input_scale")]
    same = sum(a[k] == b[k] for k in weights)
    f32 = lambda raw: struct.unpack("<f", raw)[0]
    rel = [abs(f32(a[k]) - f32(b[k])) / f32(a[k]) for k in a if k.endswith("input_scale")]
    worst = max(rel) if rel else 0.0
    print(f"{label}: weights {same}/{len(weights)} identical; input_scale max rel diff "
          f"{worst:.2e}, {sum(r == 0 for r in rel)}/{len(rel)} identical")


if __name__ == "__main__":
    main()
