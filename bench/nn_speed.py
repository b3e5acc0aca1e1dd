#!/usr/bin/env python3
"""fp32 (and mxfp4-weight + mxfp8-activation) throughput of qcast vs PyTorch on LeNet-5 and ResNet-56.

Usage: /usr/bin/python3 bench/nn_speed.py [--qcast build/qcast] [--shared ../shared] [--threads N]
       [--batch 256] [--repeat 5]
Both sides use the same number of threads, the same random batch and the best of --repeat runs after a
warm-up. The PyTorch models are built from the shared .safetensors files with BatchNorm folded into the
convolutions (as in the ONNX files) and checked against the reference logits first.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F


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


def lenet(W):
    def f(x):
        h = F.max_pool2d(F.relu(F.conv2d(x, W["convnet.c1.weight"], W["convnet.c1.bias"])), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, W["convnet.c3.weight"], W["convnet.c3.bias"])), 2)
        h = F.relu(F.conv2d(h, W["convnet.c5.weight"], W["convnet.c5.bias"])).flatten(1)
        h = F.relu(F.linear(h, W["fc.f6.weight"], W["fc.f6.bias"]))
        return F.linear(h, W["fc.f7.weight"], W["fc.f7.bias"])
    return f


def resnet(W, n):
    def fold(conv, bn):
        s = W[bn + ".weight"] / torch.sqrt(W[bn + ".running_var"] + 1e-5)
        return (W[conv + ".weight"] * s[:, None, None, None]).contiguous(), W[bn + ".bias"] - W[bn + ".running_mean"] * s
    stem = fold("conv1", "bn1")
    blocks = []
    inp = 16
    for li, planes in enumerate([16, 32, 64]):
        for b in range(n):
            stride = 2 if (li > 0 and b == 0) else 1
            p = f"layer{li + 1}.{b}"
            blocks.append((fold(p + ".conv1", p + ".bn1"), fold(p + ".conv2", p + ".bn2"), stride, inp != planes, planes))
            inp = planes

    def f(x):
        h = F.relu(F.conv2d(x, *stem, padding=1))
        for c1, c2, stride, short, planes in blocks:
            o = F.relu(F.conv2d(h, *c1, stride=stride, padding=1))
            o = F.conv2d(o, *c2, padding=1)
            sc = F.pad(h[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)) if (stride != 1 or short) else h
            h = F.relu(o + sc)
        h = F.adaptive_avg_pool2d(h, 1).flatten(1)
        return F.linear(h, W["linear.weight"], W["linear.bias"])
    return f


def torch_speed(fn, x, repeat):
    with torch.no_grad():
        fn(x)
        best = math.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn(x)
            best = min(best, time.perf_counter() - t0)
    return x.shape[0] / best


def qcast_speed(qcast, model, npy, threads, repeat, extra=()):
    out = subprocess.run([qcast, "infer", model, npy, "--threads", str(threads), "--repeat", str(repeat + 1), "--json", *extra],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["samples_per_second"]


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--qcast", default=os.path.join(here, "..", "build", "qcast"))
    ap.add_argument("--shared", default=os.path.join(here, "..", "..", "shared"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    models = os.path.join(a.shared, "models")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, build, shape in [("lenet5-mnist", lenet, (1, 32, 32)), ("resnet56-cifar10", lambda W: resnet(W, 9), (3, 32, 32))]:
            fn = build(read_safetensors(os.path.join(models, name + ".safetensors")))
            ref_in = torch.from_numpy(np.load(os.path.join(models, name + ".ref-input.npy")))
            ref_out = np.load(os.path.join(models, name + ".ref-logits.npy"))
            with torch.no_grad():
                err = np.abs(fn(ref_in).numpy() - ref_out).max()
            assert err <= 1e-4 * np.abs(ref_out).max(), f"torch {name} does not match the reference logits ({err})"
            x = torch.randn(a.batch, *shape, generator=torch.Generator().manual_seed(0))
            npy = os.path.join(tmp, name + ".npy")
            np.save(npy, x.numpy())
            onnx = os.path.join(models, name + ".onnx")
            t = torch_speed(fn, x, a.repeat)
            q = qcast_speed(a.qcast, onnx, npy, a.threads, a.repeat)
            qq = qcast_speed(a.qcast, onnx, npy, a.threads, a.repeat, ("--weights", "mxfp4", "--acts", "mxfp8"))
            rows.append((name, t, q, qq))
    print(f"batch {a.batch}, {a.threads} threads (torch {torch.__version__}), images/s, best of {a.repeat}")
    print(f"{'model':18s} {'pytorch fp32':>13s} {'qcast fp32':>11s} {'ratio':>6s} {'qcast w4a8':>11s} {'of fp32':>8s}")
    for name, t, q, qq in rows:
        print(f"{name:18s} {t:13.0f} {q:11.0f} {q / t:6.2f} {qq:11.0f} {qq / q:8.2f}")


if __name__ == "__main__":
    main()
