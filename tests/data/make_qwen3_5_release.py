#!/usr/bin/env python3
"""Writes a Qwen3.5-MoE folder in the release layout from the text-only fixture.

transformers splits fused experts into per-expert tensors when it saves, so the fixture
tests/data/hf/qwen3_5_moe_text is per expert under model.layers.*. The release
(Qwen3_5MoeForConditionalGeneration, model_type qwen3_5_moe) keeps its text model under
model.language_model.* with each layer's experts fused, no ".weight":
mlp.experts.gate_up_proj [E, 2I, H] (gate rows first, then up) and mlp.experts.down_proj
[E, H, I]; beside it a vision tower (model.visual.*) and a multi-token-prediction head (mtp.*).
This script writes that layout: the same bytes renamed and stacked, config.json's text keys
under text_config, plus a small vision tensor and an mtp tensor (deterministic bytes) that an
export must carry over untouched. Python standard library only.

Usage: make_qwen3_5_release.py SRC_TEXT_FIXTURE OUT
"""
import json
import os
import re
import struct
import sys

EXPERT = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n:]
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items()}


def write_safetensors(path, tensors):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, _, d in tensors.values():
            f.write(d)


def bf16_ramp(n, seed):
    """n deterministic bf16 values in (-1, 1), as bytes."""
    out = bytearray()
    for i in range(n):
        v = ((i * 37 + seed * 11) % 255 - 127) / 128.0
        out += struct.pack("<f", v)[2:]
    return bytes(out)


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(src, "config.json")) as f:
        text = json.load(f)
    tensors = read_safetensors(os.path.join(src, "model.safetensors"))
    E, I, H = text["num_experts"], text["moe_intermediate_size"], text["hidden_size"]
    experts = {}  # layer -> {expert: {proj: bytes}}
    result = {}
    for name, t in sorted(tensors.items()):
        m = EXPERT.match(name)
        if m:
            experts.setdefault(int(m.group(1)), {}).setdefault(int(m.group(2)), {})[m.group(3)] = t
            continue
        result[name.replace("model.", "model.language_model.", 1) if name.startswith("model.")
               else name] = t
    for layer, by_expert in sorted(experts.items()):
        prefix = "model.language_model.layers.%d.mlp.experts." % layer
        dtype = by_expert[0]["gate_proj"][0]
        gate_up = b"".join(by_expert[e]["gate_proj"][2] + by_expert[e]["up_proj"][2] for e in range(E))
        down = b"".join(by_expert[e]["down_proj"][2] for e in range(E))
        result[prefix + "gate_up_proj"] = (dtype, [E, 2 * I, H], gate_up)
        result[prefix + "down_proj"] = (dtype, [E, H, I], down)
    # Carried over untouched: a vision-tower linear and the MTP head's norm.
    result["model.visual.blocks.0.attn.qkv.weight"] = ("BF16", [48, 16], bf16_ramp(48 * 16, 1))
    result["mtp.norm.weight"] = ("BF16", [H], bf16_ramp(H, 2))
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), result)
    text["model_type"] = "qwen3_5_moe_text"
    text["architectures"] = ["Qwen3_5MoeForCausalLM"]
    wrapper = {"architectures": ["Qwen3_5MoeForConditionalGeneration"], "model_type": "qwen3_5_moe",
               "tie_word_embeddings": text.get("tie_word_embeddings", False),
               "text_config": text,
               "vision_config": {"model_type": "qwen3_5_moe", "depth": 1, "hidden_size": 16}}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(wrapper, f, indent=2)


if __name__ == "__main__":
    main()
