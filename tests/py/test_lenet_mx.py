#!/usr/bin/env python3
"""Weight-only MX fake-quant of LeNet-5 on MNIST: qcast eval vs a PyTorch implementation of the same recipe.

Usage: test_lenet_mx.py QCAST_BINARY SHARED_DIR  (exit 77 = skipped)
Recipe: every Conv / Gemm weight, viewed as [out, C*kh*kw] (resp. [out, in]), in blocks of 32 along the
reduction axis (a ragged last block is padded with zeros for the amax); OCP MX shared scale
2^(floor(log2 amax) - emax_elem); elements rounded to nearest-even on the element grid with saturation.
Activations stay fp32. The test counts correct test images for fp32 and each format.
"""
import gzip
import json
import math
import os
import subprocess
import sys

# element: (mantissa bits, exponent bias, max value) for floats; ("int", frac_bits, max) for MXINT8
ELEMS = {
    "mxfp4": ("float", 1, 1, 6.0),
    "mxfp6_e2m3": ("float", 3, 1, 7.5),
    "mxfp8": ("float", 3, 7, 448.0),
    "mxint8": ("int", 6, 0, 127.0 / 64.0),
}


def main():
    qcast, shared = sys.argv[1], sys.argv[2]
    onnx = os.path.join(shared, "models", "lenet5-mnist.onnx")
    st = os.path.join(shared, "models", "lenet5-mnist.safetensors")
    mnist = os.path.join(shared, "data", "mnist")
    if not all(os.path.exists(p) for p in (onnx, st, mnist)):
        print("skip: shared material absent")
        return 77
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("skip: torch/numpy absent")
        return 77
    torch.set_num_threads(2)

    def read_safetensors(path):
        raw = open(path, "rb").read()
        n = int.from_bytes(raw[:8], "little")
        hdr = json.loads(raw[8:8 + n])
        out = {}
        for k, v in hdr.items():
            if k == "__metadata__":
                continue
            a, b = v["data_offsets"]
            out[k] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).copy()).reshape(v["shape"])
        return out

    def idx(path):
        b = gzip.open(path).read()
        nd = b[3]
        dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
        return np.frombuffer(b[4 + 4 * nd:], dtype=np.uint8).reshape(dims)

    x = torch.from_numpy(idx(os.path.join(mnist, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255.0)[:, None]
    y = torch.from_numpy(idx(os.path.join(mnist, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = (x - 0.1307) / 0.3081
    W = read_safetensors(st)

    def mx_quant(w, fmt):
        kind, p1, p2, vmax = ELEMS[fmt]
        shape = w.shape
        w2 = w.reshape(shape[0], -1)
        cols = w2.shape[1]
        pad = (-cols) % 32
        wp = torch.cat([w2, torch.zeros(shape[0], pad)], 1).reshape(shape[0], -1, 32)
        amax = wp.abs().amax(-1, keepdim=True)
        emax = math.floor(math.log2(vmax))
        e = torch.floor(torch.log2(torch.where(amax > 0, amax, torch.ones_like(amax)))) - emax
        scale = torch.pow(2.0, e)
        v = wp / scale
        if kind == "int":
            q = torch.round(v * 2.0 ** p1) / 2.0 ** p1
        else:
            mbits, bias = p1, p2
            a = v.abs()
            ex = torch.floor(torch.log2(torch.where(a > 0, a, torch.ones_like(a))))
            ex = torch.clamp(ex, min=1 - bias)
            step = torch.pow(2.0, ex - mbits)
            q = torch.round(v / step) * step
        q = torch.clamp(q, -vmax, vmax)
        out = (q * scale).reshape(shape[0], -1)[:, :cols]
        return out.reshape(shape)

    def run(fmt):
        P = {k: (mx_quant(v, fmt) if (fmt and k.endswith("weight")) else v) for k, v in W.items()}
        with torch.no_grad():
            h = F.max_pool2d(F.relu(F.conv2d(x, P["convnet.c1.weight"], P["convnet.c1.bias"])), 2)
            h = F.max_pool2d(F.relu(F.conv2d(h, P["convnet.c3.weight"], P["convnet.c3.bias"])), 2)
            h = F.relu(F.conv2d(h, P["convnet.c5.weight"], P["convnet.c5.bias"])).flatten(1)
            h = F.relu(F.linear(h, P["fc.f6.weight"], P["fc.f6.bias"]))
            h = F.linear(h, P["fc.f7.weight"], P["fc.f7.bias"])
        return int((h.argmax(1) == y).sum())

    spec = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "data", "mnist-lenet5.yaml")
    fails = 0
    for fmt in [None, "mxfp4", "mxfp6_e2m3", "mxfp8", "mxint8"]:
        ref = run(fmt)
        cmd = [qcast, "eval", onnx, "--data", spec, "--data-root", mnist, "--json"]
        if fmt:
            cmd += ["--weights", fmt]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print("qcast eval failed:", out.stderr)
            return 1
        got = json.loads(out.stdout)["correct"]
        ok = got == ref
        fails += not ok
        print(f"{fmt or 'fp32':12s} torch {ref / 1e4:.4f}  qcast {got / 1e4:.4f}  {'ok' if ok else 'MISMATCH'}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
