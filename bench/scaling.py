#!/usr/bin/env python3
"""Time against input size, for the code paths that were quadratic (issue 19): cast / encode of a
safetensors file with many small tensors, and loading an ONNX graph with many nodes. Prints seconds at
N and 4N and their ratio (about 4 when linear, about 16 when quadratic).

Usage: bench/scaling.py build/qcast [--tensors 20000] [--nodes 50000]
Needs numpy, and python3-onnx for the graph case.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time


def write_many(path, n):
    import numpy as np
    header, offset = {}, 0
    for k in range(n):
        header[f"layer.{k}.weight"] = {"dtype": "F32", "shape": [4], "data_offsets": [offset, offset + 16]}
        offset += 16
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    data = (np.arange(4 * n, dtype=np.float32) % 17 - 8).tobytes()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def chain(path, n):
    import onnx
    from onnx import TensorProto, helper
    nodes = [helper.make_node("Relu", ["x" if k == 0 else f"v{k-1}"], [f"v{k}"]) for k in range(n)]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info(f"v{n-1}", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(g), path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qcast")
    ap.add_argument("--tensors", type=int, default=20000)
    ap.add_argument("--nodes", type=int, default=50000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for op in ("cast", "encode"):
            ts = []
            for n in (a.tensors, 4 * a.tensors):
                src = os.path.join(d, f"m{n}.safetensors")
                if not os.path.exists(src):
                    write_many(src, n)
                ts.append(timed([a.qcast, op, src, os.path.join(d, "o.safetensors"), "-f", "int8", "--threads", "2"]))
            print(f"{op} {a.tensors} / {4 * a.tensors} tensors: {ts[0]:.2f} s / {ts[1]:.2f} s, ratio {ts[1] / ts[0]:.1f}")
        try:
            ts = []
            for n in (a.nodes, 4 * a.nodes):
                p = os.path.join(d, f"chain{n}.onnx")
                chain(p, n)
                ts.append(timed([a.qcast, "inspect", p]))
            print(f"inspect {a.nodes} / {4 * a.nodes} nodes: {ts[0]:.2f} s / {ts[1]:.2f} s, ratio {ts[1] / ts[0]:.1f}")
        except ImportError:
            print("onnx: python3-onnx absent, graph case skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
