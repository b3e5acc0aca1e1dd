#!/usr/bin/env python3
"""Writes ONNX's backend node test cases (model.onnx + test_data_set_*/input_*.pb, output_*.pb) into a
directory, with the generator the installed onnx package ships (Debian's python3-onnx does not ship the
generated data). Run at test time by CTest into the build tree; the data is never committed.

Usage: generate.py OUT_DIR. Exit status 77 (CTest's skip) when the onnx package is missing."""
import os
import shutil
import sys

try:
    import numpy as np
    import onnx
    from onnx.backend.test import cmd_tools
except ImportError as e:
    print(f"SKIP: python3-onnx is not installed ({e}); scripts/setup installs it", file=sys.stderr)
    sys.exit(77)

# Debian bookworm pairs onnx 1.12 with numpy 1.24, which removed the deprecated aliases (np.float, ...)
# that some of onnx 1.12's case generators still use (bernoulli.py, ...): without them importing the
# generators fails for every case. The aliases named the builtins, so restoring them changes nothing else.
for name, typ in (("float", float), ("int", int), ("bool", bool), ("object", object), ("complex", complex), ("str", str)):
    if name not in np.__dict__:
        setattr(np, name, typ)

out = sys.argv[1]
tmp = out + ".tmp"
shutil.rmtree(tmp, ignore_errors=True)
sys.argv = ["cmd_tools", "generate-data", "-o", tmp]
cmd_tools.main()
# Only the node cases are used; write them to OUT_DIR whole (temp dir + rename), with the onnx version.
shutil.rmtree(out, ignore_errors=True)
os.rename(tmp, out)
with open(os.path.join(out, "ONNX_VERSION"), "w") as f:
    f.write(onnx.__version__ + "\n")
print(f"generated {len(os.listdir(os.path.join(out, 'node')))} node cases with onnx {onnx.__version__} in {out}")
