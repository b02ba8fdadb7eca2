#!/usr/bin/env python3
"""The layer order of docs/architecture.md, checked against the code.

Reads the table under "## Layers" (top to bottom, with a LibTorch column) and fails, naming the
file and the line, when
  - a file of layer L (src/L/..., include/moequant/L/...) includes "moequant/M/..." for a layer M
    above L, or reaches into another layer's private sources with a relative "../" include;
  - a file of a layer marked "no" in the LibTorch column includes a LibTorch header
    (<torch/...>, <ATen/...>, <c10/...>), unless its first lines say "layering: a library of its
    own over LibTorch" (the one such file, parallel's torchrun store, is built apart);
  - src/L/CMakeLists.txt (or a .cmake file there) links moequant_M for a layer M above L;
  - a folder of src/ or include/moequant/ is no layer of the table, or a layer has no folder.
Python standard library only.

Usage: layering_test.py [--repo DIR]
"""

import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
TORCH_HEADER = re.compile(r"^(torch|ATen|c10)/")
TORCH_APART = "layering: a library of its own over LibTorch"
LINK = re.compile(r"\bmoequant_([a-z_]+)\b")
SOURCE_SUFFIXES = (".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh")


def read_layers(repo):
    """[(layer, uses_torch)] from the top of the stack down."""
    path = os.path.join(repo, "docs", "architecture.md")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip() == "## Layers")
    layers = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) < 2 or cells[0] in ("layer", "") or set(cells[0]) <= set("-: "):
            continue
        if cells[1] not in ("yes", "no"):
            raise SystemExit(f"{path}: layer row '{line}' needs 'yes' or 'no' for LibTorch")
        layers.append((cells[0], cells[1] == "yes"))
    if not layers:
        raise SystemExit(f"{path}: no layer table under '## Layers'")
    return layers


def layer_files(repo, layer):
    roots = [os.path.join(repo, "src", layer), os.path.join(repo, "include", "moequant", layer)]
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in sorted(names):
                if name.endswith(SOURCE_SUFFIXES):
                    yield os.path.join(folder, name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.join(os.path.dirname(__file__), ".."))
    repo = os.path.abspath(ap.parse_args().repo)
    layers = read_layers(repo)
    rank = {name: len(layers) - i for i, (name, _) in enumerate(layers)}  # higher = above
    torch_free = {name for name, torch in layers if not torch}
    problems = []

    folders = set(os.listdir(os.path.join(repo, "src"))) | set(
        os.listdir(os.path.join(repo, "include", "moequant")))
    for folder in sorted(folders):
        full = [os.path.join(repo, "src", folder), os.path.join(repo, "include", "moequant", folder)]
        if any(os.path.isdir(p) for p in full) and folder not in rank:
            problems.append(f"src/{folder} or include/moequant/{folder}: a folder that is no layer "
                            f"of docs/architecture.md")
    for name in rank:
        if not os.path.isdir(os.path.join(repo, "src", name)):
            problems.append(f"docs/architecture.md: layer '{name}' has no folder src/{name}")

    checked = 0
    for layer, _ in layers:
        for path in layer_files(repo, layer):
            checked += 1
            rel = os.path.relpath(path, repo)
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read().splitlines()
            apart = any(TORCH_APART in l for l in text[:5])
            for n, line in enumerate(text, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                header = m.group(2)
                if m.group(1) == '"' and header.startswith("moequant/"):
                    parts = header.split("/")
                    target = parts[1] if len(parts) > 2 else None
                    if target in rank and rank[target] > rank[layer]:
                        problems.append(f"{rel}:{n}: layer '{layer}' includes '{header}' of "
                                        f"layer '{target}', which is above it")
                elif m.group(1) == '"' and header.startswith("../"):
                    here = os.path.dirname(path)
                    resolved = os.path.normpath(os.path.join(here, header))
                    own = [os.path.join(repo, "src", layer), os.path.join(repo, "include",
                                                                         "moequant", layer)]
                    if not any(resolved.startswith(o + os.sep) for o in own):
                        problems.append(f"{rel}:{n}: '{header}' reaches into another "
                                        f"layer's private files")
                if layer in torch_free and TORCH_HEADER.match(header) and not apart:
                    problems.append(f"{rel}:{n}: layer '{layer}' is built without LibTorch "
                                    f"but includes <{header}>")

    for layer, _ in layers:
        folder = os.path.join(repo, "src", layer)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name != "CMakeLists.txt" and not name.endswith(".cmake"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    code = line.split("#", 1)[0]
                    for target in LINK.findall(code):
                        if target in rank and rank[target] > rank[layer]:
                            problems.append(f"{os.path.relpath(path, repo)}:{n}: layer '{layer}' "
                                            f"links moequant_{target}, which is above it")

    for p in problems:
        print(p)
    print(f"layering: {len(layers)} layers, {checked} files checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
