#!/usr/bin/env python3
"""Fails (exit 1) when an #include in the library points up the layer stack.

The layers (bottom first) come from the build (CMakeLists.txt's QCAST_LAYERS, passed as --layers), so the
build and this check read one list. A file's layer is its folder: src/<layer>/... and
include/qcast/<layer>/...; the top-level public headers include/qcast/*.hpp are mapped in TOP_HEADERS
below. Two rules, for every file under src/ and include/qcast/:
  1. it includes nothing from a layer above its own;
  2. it includes no private header (src/<other>/*.hpp) of another layer, except core's, which every layer
     may use (core is the small utility tier under everything).
Run by the build before any library target compiles (target qcast_layer_check), and by CTest on a planted
violation (tests/layers/test_check_layers.py) to prove that it fails.
"""
import argparse
import os
import re
import sys

# The public headers that sit at the top of include/qcast (older than the per-layer folders), by layer.
TOP_HEADERS = {
    "qcast.hpp": "kernels",  # the core tier: core, format and the quantization kernels' API
    "error.hpp": "core",
    "file.hpp": "core",
    "half.hpp": "core",
    "progress.hpp": "core",
    "tensor.hpp": "core",
    "format.hpp": "format",
    "quantize.hpp": "kernels",
    "stats.hpp": "kernels",
    "io.hpp": "io",
    "packed.hpp": "io",
    "gguf.hpp": "io",
    "sniff.hpp": "io",
    "tensor_files.hpp": "io",
    "hw.hpp": "hw",
    "mapper.hpp": "hw",
    "npu.hpp": "hw",
    "reuse.hpp": "hw",
    "skips.hpp": "hw",
}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def layer_of(root, path, layers):
    """(layer, is_private) of a library file, or (None, False) for files outside src/ and include/qcast/."""
    rel = os.path.relpath(path, root).split(os.sep)
    if len(rel) >= 3 and rel[0] == "src":
        return rel[1], True
    if len(rel) >= 3 and rel[0] == "include" and rel[1] == "qcast":
        if len(rel) == 3:
            return TOP_HEADERS.get(rel[2], "?"), False
        return rel[2], False
    return None, False


def resolve(root, include, current):
    for base in (os.path.dirname(current), os.path.join(root, "include"), os.path.join(root, "src")):
        cand = os.path.normpath(os.path.join(base, include))
        if os.path.isfile(cand):
            return cand
    return None  # a third-party header reached by quotes (Highway's "hwy/..."): not ours


def check(root, layers):
    rank = {name: i for i, name in enumerate(layers)}
    errors = []
    for top in ("src", os.path.join("include", "qcast")):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith((".cpp", ".hpp", ".h", ".cc")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                layer, _ = layer_of(root, path, layers)
                if layer not in rank:
                    hint = ("add it to TOP_HEADERS in scripts/check_layers.py" if layer == "?"
                            else f"'{layer}' is not a layer of QCAST_LAYERS ({' '.join(layers)})")
                    errors.append(f"{rel}: not in any layer: {hint}")
                    continue
                text = open(path, encoding="utf-8", errors="replace").read()
                for m in INCLUDE_RE.finditer(text):
                    target = resolve(root, m.group(1), path)
                    if target is None:
                        continue
                    tlayer, private = layer_of(root, target, layers)
                    if tlayer is None:
                        continue
                    line = text.count("\n", 0, m.start()) + 1
                    trel = os.path.relpath(target, root)
                    if tlayer not in rank:
                        continue  # reported when that file itself is checked
                    if rank[tlayer] > rank[layer]:
                        errors.append(f"{rel}:{line}: layer '{layer}' includes {trel} of layer '{tlayer}', "
                                      f"which lies above it ({' < '.join(layers)})")
                    elif private and tlayer != layer and tlayer != "core":
                        errors.append(f"{rel}:{line}: layer '{layer}' includes {trel}, a private header of "
                                      f"layer '{tlayer}' (make it public under include/qcast/{tlayer}/)")
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="the repository root")
    ap.add_argument("--layers", nargs="+", required=True, help="the layers, bottom first")
    a = ap.parse_args()
    errors = check(os.path.abspath(a.root), a.layers)
    for e in errors:
        print("check_layers: " + e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
