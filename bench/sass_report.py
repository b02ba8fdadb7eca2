#!/usr/bin/env python3
"""Per-kernel SASS summary of CUDA object files: global load/store widths and local memory.

    python3 bench/sass_report.py [--dump FILE] build-gpu/src/kernels/CMakeFiles/moequant_kernels.dir/cuda/*.o

Runs `cuobjdump --dump-sass` on each file and prints, per kernel, the number of SASS instructions,
the global loads and stores by width (LDG/STG .128 = 16 bytes) and any local-memory access
(LDL/STL: spills or arrays the compiler could not keep in registers). Exits 1 when a kernel
touches local memory or a vector-path kernel has no 16-byte global load. Also prints each
kernel's registers (cuobjdump --dump-resource-usage); --dump FILE writes the SASS of the bf16
fast-path quantize kernels (vec, pair, fast) to FILE, for reading instruction counts per element.
"""
import collections
import re
import shutil
import subprocess
import sys


def demangle(names):
    if not shutil.which("c++filt"):
        return names
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return out.stdout.splitlines() if out.returncode == 0 else names


def width(op):
    m = re.search(r"\.(128|64|32|16|U8|S8|U16|S16)\b", op)
    if not m:
        return "32"
    return {"U8": "8", "S8": "8", "U16": "16", "S16": "16"}.get(m.group(1), m.group(1))


def strip_params(name):
    """Drops the trailing parameter list "(...)" of a demangled name (balanced parentheses: the
    template arguments themselves contain casts such as "(mq_dtype)0")."""
    if not name.endswith(")"):
        return name
    depth = 0
    for i in range(len(name) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(name[i], 0)
        if depth == 0:
            return name[:i]
    return name


def expects_vector_loads(name):
    """Kernels whose main path is meant to read 16-byte vectors."""
    if "scalar" in name or "dequantize_nvfp4" in name or "dequantize_int4" in name:
        return False
    if "fill_kernel" in name:
        return False
    if re.search(r"_vec_kernel|_pair_kernel|_fast_kernel|multi_amax", name):
        return True
    args = re.search(r"<([^<>]*)>", name)  # a trailing `false` is the element-wise variant
    return not (args and args.group(1).split(",")[-1].strip() == "false")


def resource_usage(path):
    """Mangled kernel name -> registers, from cuobjdump --dump-resource-usage (empty if absent)."""
    out = subprocess.run(["cuobjdump", "--dump-resource-usage", path], capture_output=True,
                         text=True)
    regs, current = {}, None
    for line in out.stdout.splitlines():
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"REG:(\d+)", line)
        if m and current:
            regs[current] = int(m.group(1))
            current = None
    return regs


def main(argv):
    dump = None
    if argv[:1] == ["--dump"]:
        dump, argv = argv[1], argv[2:]
        open(dump, "w").close()
    paths = argv
    if not shutil.which("cuobjdump"):
        print("# sass_report: cuobjdump not found, skipped")
        return 0
    kernels = collections.OrderedDict()
    texts = collections.defaultdict(list)
    regs = {}
    for path in paths:
        sass = subprocess.run(["cuobjdump", "--dump-sass", path], capture_output=True, text=True)
        if sass.returncode != 0:
            print(f"# sass_report: cuobjdump failed on {path}: {sass.stderr.strip()}")
            return 1
        regs.update(resource_usage(path))
        current = None
        for line in sass.stdout.splitlines():
            m = re.match(r"\s*Function : (\S+)", line)
            if m:
                current = kernels.setdefault(m.group(1), collections.Counter())
                name = m.group(1)
                continue
            if current is not None:
                ins = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?;)", line)
                if ins:  # address and instruction, without the encoding comments
                    texts[name].append(f"{ins.group(1)} {ins.group(2)}")
                elif re.match(r"\.L_x_\d+:", line.strip()):
                    texts[name].append(line.strip())
            m = re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
            if m and current is not None:
                op = m.group(1)
                current["instructions"] += 1
                base = op.split(".")[0]
                if base in ("LDG", "STG"):
                    current[f"{base}.{width(op)}"] += 1
                elif base in ("LDL", "STL"):
                    current["local"] += 1
    names = demangle(list(kernels))
    bad = False
    print(f"# {'instr':>6} {'LDG.128':>8} {'LDG other':>9} {'STG.128':>8} {'STG.64':>7} "
          f"{'STG other':>9} {'local':>6} {'regs':>5}  kernel")
    for (mangled, c), name in zip(kernels.items(), names):
        name = name.replace("moequant::kernels::cuda::(anonymous namespace)::", "")
        name = name.replace("moequant::bench::(anonymous namespace)::", "")
        name = strip_params(name.replace("void ", ""))
        for code, dt in (("0", "bf16"), ("1", "f16"), ("2", "f32")):
            name = name.replace(f"(mq_dtype){code}", dt)
        if dump and re.search(r"quantize_(fp8_vec|nvfp4_pair|fp8_block_vec|int4_fast)_kernel<bf16"
                              r"[^>]*>", name):
            with open(dump, "a") as f:
                f.write(f"\n#### {name}\n" + "\n".join(texts[mangled]) + "\n")
        ldg_other = sum(v for k, v in c.items() if k.startswith("LDG.") and k != "LDG.128")
        stg_other = sum(v for k, v in c.items()
                        if k.startswith("STG.") and k not in ("STG.128", "STG.64"))
        flag = ""
        if c["local"]:
            flag, bad = "  <- LOCAL MEMORY", True
        elif expects_vector_loads(name) and c["LDG.128"] == 0:
            flag, bad = "  <- NO 16-BYTE LOADS", True
        print(f"  {c['instructions']:>6} {c['LDG.128']:>8} {ldg_other:>9} {c['STG.128']:>8} "
              f"{c['STG.64']:>7} {stg_other:>9} {c['local']:>6} {regs.get(mangled, '-'):>5}  "
              f"{name}{flag}")
    print("# sass check:", "FAIL" if bad else "OK (no local memory; 16-byte loads on vector paths)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
