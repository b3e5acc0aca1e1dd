#!/usr/bin/env python3
"""fp32 throughput of qcast vs ONNX Runtime (npm onnxruntime-node 1.30, CPU) vs PyTorch on LeNet-5 and ResNet-56,
plus qcast's fake-quant W4A8 (mxfp4 weights, mxfp8 activations) against its own fp32, side by side.

Usage: /usr/bin/python3 bench/ort_speed.py [--qcast build/qcast] [--shared ../shared] [--ort-env build/tests/ort-env]
       [--batches 1,256] [--threads 1,2] [--rounds 3] [--repeat 5]
ONNX Runtime is installed by tests/ort/install.sh (the ort.install CTest does it into build/tests/ort-env).
Every configuration (model, batch, threads) runs --rounds rounds; each round runs qcast fp32, ONNX Runtime,
PyTorch and qcast W4A8 one after the other (alternating), each reporting the best of --repeat timed runs after a
warm-up run, on the same random batch. The table gives the range (min-max over rounds) of images/s and of the
per-round ratios qcast / ORT and W4A8 / fp32. Threads: qcast --threads T, ORT intraOpNumThreads = T
(interOp 1), torch.set_num_threads(T).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nn_speed import lenet, qcast_speed, read_safetensors, resnet, torch_speed  # noqa: E402


def ort_speed(env, model, npy, threads, repeat):
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([{"model": os.path.abspath(model), "inputs": [os.path.abspath(npy)], "threads": threads, "repeat": repeat}], f)
    try:
        out = subprocess.run(["node", os.path.join(here, "..", "tests", "ort", "ort_run.mjs"), f.name], cwd=env,
                             capture_output=True, text=True, check=True)
    finally:
        os.unlink(f.name)
    return float(np.load(npy, mmap_mode="r").shape[0]) / json.loads(out.stdout.strip().splitlines()[-1])["best_s"]


def rng(v):
    return f"{min(v):.0f}-{max(v):.0f}" if max(v) >= 100 else f"{min(v):.2f}-{max(v):.2f}"


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--qcast", default=os.path.join(here, "..", "build", "qcast"))
    ap.add_argument("--shared", default=os.path.join(here, "..", "..", "shared"))
    ap.add_argument("--ort-env", default=os.path.join(here, "..", "build", "tests", "ort-env"))
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default="lenet5-mnist,resnet56-cifar10")
    a = ap.parse_args()
    if not os.path.isdir(os.path.join(a.ort_env, "node_modules", "onnxruntime-node")):
        sys.exit(f"ONNX Runtime is not installed in {a.ort_env}: run bash tests/ort/install.sh {a.ort_env}")
    models = os.path.join(a.shared, "models")
    builders = {"lenet5-mnist": (lenet, (1, 32, 32)), "resnet56-cifar10": (lambda W: resnet(W, 9), (3, 32, 32))}
    print(f"torch {torch.__version__}, ONNX Runtime 1.30.0 (onnxruntime-node), {a.rounds} rounds x best of {a.repeat}, images/s (min-max over rounds)")
    print(f"{'model':17s} {'batch':>5s} {'thr':>3s} {'qcast fp32':>13s} {'ORT fp32':>13s} {'PyTorch fp32':>13s} {'qcast/ORT':>10s} {'qcast W4A8':>13s} {'W4A8/fp32':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            build, shape = builders[name]
            fn = build(read_safetensors(os.path.join(models, name + ".safetensors")))
            onnx = os.path.join(models, name + ".onnx")
            for batch in [int(b) for b in a.batches.split(",")]:
                x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
                npy = os.path.join(tmp, f"{name}-{batch}.npy")
                np.save(npy, x.numpy())
                for threads in [int(t) for t in a.threads.split(",")]:
                    torch.set_num_threads(threads)
                    q, o, t, w = [], [], [], []
                    for _ in range(a.rounds):
                        q.append(qcast_speed(a.qcast, onnx, npy, threads, a.repeat))
                        o.append(ort_speed(a.ort_env, onnx, npy, threads, a.repeat))
                        t.append(torch_speed(fn, x, a.repeat))
                        w.append(qcast_speed(a.qcast, onnx, npy, threads, a.repeat, ("--weights", "mxfp4", "--acts", "mxfp8")))
                    ratio = [qi / oi for qi, oi in zip(q, o)]
                    wr = [wi / qi for wi, qi in zip(w, q)]
                    print(f"{name:17s} {batch:5d} {threads:3d} {rng(q):>13s} {rng(o):>13s} {rng(t):>13s} {rng(ratio):>10s} {rng(w):>13s} {rng(wr):>10s}", flush=True)


if __name__ == "__main__":
    main()
