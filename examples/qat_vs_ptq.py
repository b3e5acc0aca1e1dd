#!/usr/bin/python3
"""PTQ vs QAT on Fashion-MNIST (issue 16's first experiment, the small-CNN part).

A small CNN is trained in fp32 with PyTorch for --epochs, then for each weight format, with equal training:
  - PTQ: `qcast quantize --method rtn|gptq` of the fp32 model trained --qat-epochs more (same schedule,
    fp32), exported to ONNX, evaluated by qcast;
  - QAT (LSQ): the same with one learned scale per output channel on the format's element
    (qcast.torch's lsq=True), exported with the weights it computes with and evaluated by qcast;
  - QAT: the --epochs fp32 model fine-tuned for --qat-epochs with its Conv2d / Linear layers swapped by `qcast.torch.quantize_modules`
    (straight-through fake-quant of the weights in the forward pass), exported, and evaluated by
    `qcast eval --weights F` (the same fake-quant, so qcast sees the weights the training saw; the script
    checks that qcast's accuracy equals PyTorch's own evaluation of the quantized model).
Activations stay in fp32. Data: Debian's dataset-fashion-mnist (train 60k, test 10k).

    /usr/bin/python3 examples/qat_vs_ptq.py --qcast build/qcast --out results/qat
    /usr/bin/python3 examples/qat_vs_ptq.py --qcast build/qcast --out /tmp/qat --small   # CI size

Prints a markdown table (docs/results.md) and writes OUT/results.json. Deterministic for a seed.
"""
import argparse
import copy
import gzip
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "build", "python"))
import qcast  # noqa: E402
import qcast.torch as qt  # noqa: E402

MEAN, STD = 0.2860, 0.3530
FORMATS = ["int8@fp32/ch0", "int4@fp32/ch0", "mxfp4", "int2@fp32/ch0", "ternary@fp32/ch0", "binary@fp32/ch0"]


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        self.classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 64), torch.nn.ReLU(),
                                              torch.nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class Block(torch.nn.Module):
    """A ResNet basic block: two 3x3 conv + BN, the input added back (a 1x1 conv when the shape changes)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride=stride, bias=False), torch.nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.skip is None else self.skip(x)))


class SmallResNet(torch.nn.Module):
    """A small ResNet with skip connections for 28x28 images: a 3x3 stem and three basic blocks
    (16, 32 and 64 channels, the last two at stride 2), global average pooling, one fc layer."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU())
        self.blocks = torch.nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


MODELS = {"cnn": SmallCNN, "resnet": SmallResNet}
# BN_NOTE: torch.onnx.export in eval mode folds each BatchNorm into the conv before it, and qcast then
# quantizes the folded weights. QAT here fake-quantizes the conv weights before the batch norm, so the
# exports keep the BatchNormalization nodes (PRESERVE with the model in eval mode): qcast evaluates what
# training saw. With per-channel scales both orders give the same weights up to rounding; with MX blocks
# (power-of-two scales shared across output channels' rows) they do not (mxfp4 QAT: 0.875 with the batch
# norms kept, 0.643 folded, on the small ResNet).
MODEL = SmallCNN  # --model


def batches(x, y, batch, rng):
    order = rng.permutation(len(x))
    for i in range(0, len(x), batch):
        j = order[i:i + batch]
        yield torch.from_numpy(x[j]), torch.from_numpy(y[j])


def train(model, x, y, epochs, lr, seed, log, loss_fn=None):
    """Adam over shuffled batches of 128; loss_fn(outputs, inputs, labels) defaults to cross-entropy."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for e in range(epochs):
        t0, total, n = time.time(), 0.0, 0
        for xb, yb in batches(x, y, 128, rng):
            opt.zero_grad()
            out = model(xb)
            loss = loss_fn(out, xb, yb) if loss_fn else torch.nn.functional.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            total += float(loss) * len(xb)
            n += len(xb)
        log(f"  epoch {e + 1}/{epochs}: loss {total / n:.4f} ({time.time() - t0:.1f} s)")
    model.eval()


def accuracy(model, x, y):
    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(x[i:i + 500])).argmax(1) for i in range(0, len(x), 500)])
    return float((pred.numpy() == y).mean())


def export(model, path):
    plain = MODEL()
    plain.load_state_dict(model.state_dict())  # QuantConv2d / QuantLinear keep Conv2d / Linear parameters
    export_onnx(plain, path, (1, 1, 28, 28), preserve_bn=True)  # keep BatchNormalization: see BN_NOTE


def export_quantized(model, path):
    """Exports the weights the quantized model computes with (LSQ: its learned scales times the element's
    codes), so qcast evaluates exactly those values without a --weights format."""
    plain = MODEL()
    plain.load_state_dict(model.state_dict(), strict=False)  # biases, batch norms; not the LSQ scales
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (qt.QuantLinear, qt.QuantConv2d)):
                plain.get_submodule(name).weight.copy_(m.quantized_weight())
    export_onnx(plain, path, (1, 1, 28, 28), preserve_bn=True)  # keep BatchNormalization: see BN_NOTE


def export_onnx(model, path, shape, input_name="x", preserve_bn=False):
    """torch.onnx.export of `model` in eval mode with a dynamic batch; preserve_bn keeps BatchNormalization nodes
    (see BN_NOTE) instead of folding them."""
    model.eval()
    kw = {"training": torch.onnx.TrainingMode.PRESERVE} if preserve_bn else {}
    torch.onnx.export(model, torch.zeros(*shape), path, opset_version=13, input_names=[input_name], output_names=["logits"],
                      dynamic_axes={input_name: {0: "n"}, "logits": {0: "n"}}, **kw)


def fashion_mnist(data, train_limit, test_limit, out):
    """Debian's dataset-fashion-mnist at `data`, normalized, as (xtr, ytr, xte, yte, test_yaml, calib_yaml): the
    first train_limit (0 = all) training images and test_limit test images, and the dataset specs with which qcast
    reads the same files (test set for evaluation, training set for calibration); None when the files are missing."""
    for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        if not os.path.exists(os.path.join(data, f)):
            print(f"SKIP: {data}/{f} not found (Debian's dataset-fashion-mnist)")
            return None
    norm = lambda im: ((im.astype(np.float32) / 255.0 - MEAN) / STD)[:, None]  # noqa: E731
    xtr, ytr = norm(idx(os.path.join(data, "train-images-idx3-ubyte.gz"))), idx(os.path.join(data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    xte, yte = norm(idx(os.path.join(data, "t10k-images-idx3-ubyte.gz"))), idx(os.path.join(data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    if train_limit:
        xtr, ytr = xtr[:train_limit], ytr[:train_limit]
    xte, yte = xte[:test_limit], yte[:test_limit]
    spec = ("format: idx\nroot: {root}\nimages: {split}-images-idx3-ubyte.gz\nlabels: {split}-labels-idx1-ubyte.gz\n"
            "preprocess:\n  scale: 0.00392156862745098\n  mean: [{mean}]\n  std: [{std}]\n")
    os.makedirs(out, exist_ok=True)
    test_yaml, calib_yaml = os.path.join(out, "test.yaml"), os.path.join(out, "calib.yaml")
    with open(test_yaml, "w") as f:
        f.write(spec.format(root=data, split="t10k", mean=MEAN, std=STD))
    with open(calib_yaml, "w") as f:
        f.write(spec.format(root=data, split="train", mean=MEAN, std=STD))
    return xtr, ytr, xte, yte, test_yaml, calib_yaml


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qcast", default=os.path.join(os.path.dirname(HERE), "build", "qcast"))
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="results/qat")
    ap.add_argument("--epochs", type=int, default=4, help="fp32 training epochs")
    ap.add_argument("--qat-epochs", type=int, default=2, help="QAT fine-tuning epochs per format")
    ap.add_argument("--train-limit", type=int, default=0, help="use the first N training images (0 = all)")
    ap.add_argument("--test-limit", type=int, default=10000)
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--methods", default="rtn,gptq")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-lsq", dest="lsq", action="store_false", help="skip the QAT run with learned scales (LSQ)")
    ap.add_argument("--small", action="store_true", help="CI size: 3000 training images, 1 + 1 epochs, 1000 test images, int4")
    ap.add_argument("--model", choices=sorted(MODELS), default="cnn", help="cnn: the small CNN; resnet: the small ResNet with skips")
    a = ap.parse_args()
    global MODEL
    MODEL = MODELS[a.model]
    if a.small:
        a.train_limit, a.epochs, a.qat_epochs, a.test_limit, a.formats, a.methods = 3000, 1, 1, 1000, "int4@fp32/ch0", "rtn"
    loaded = fashion_mnist(a.data, a.train_limit, a.test_limit, a.out)
    if loaded is None:
        return 77
    xtr, ytr, xte, yte, test_yaml, calib_yaml = loaded
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    log = lambda m: print(m, flush=True)  # noqa: E731

    def qcast_eval(model_path, fmt=None):
        cmd = [a.qcast, "eval", model_path, "--data", test_yaml, "--limit", str(a.test_limit), "--json", "--quiet", "--threads", str(a.threads)]
        if fmt:
            cmd += ["--weights", fmt]
        log("$ " + " ".join(cmd))
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["accuracy"]

    log(f"fp32 training ({len(xtr)} images, {a.epochs} epochs)")
    torch.manual_seed(a.seed)
    fp32 = MODEL()
    train(fp32, xtr, ytr, a.epochs, 1e-3, a.seed, log)
    # Equal training budgets: PTQ quantizes the fp32 model trained for the QAT epochs too (the same
    # fine-tuning schedule in fp32); QAT fine-tunes the fp32 model of `--epochs` with fake-quant.
    more = copy.deepcopy(fp32)
    log(f"fp32 fine-tuning ({a.qat_epochs} epochs, as QAT does)")
    train(more, xtr, ytr, a.qat_epochs, 2e-4, a.seed + 1, log)
    fp32_onnx = os.path.join(a.out, "fp32.onnx")
    export(more, fp32_onnx)
    res = {"fp32": {"epochs": a.epochs + a.qat_epochs, "torch": accuracy(more, xte, yte), "qcast": qcast_eval(fp32_onnx),
                    "before_finetuning": accuracy(fp32, xte, yte)}, "formats": {}}
    log(f"fp32: torch {res['fp32']['torch']:.4f}, qcast {res['fp32']['qcast']:.4f} ({res['fp32']['before_finetuning']:.4f} "
        f"after {a.epochs} epochs)")
    failures = []
    if abs(res["fp32"]["torch"] - res["fp32"]["qcast"]) > 0.002:
        failures.append("fp32: qcast eval of the exported model differs from PyTorch")
    for fmt in a.formats.split(","):
        r = {}
        for m in a.methods.split(","):
            q = os.path.join(a.out, "ptq.safetensors")
            cmd = [a.qcast, "quantize", fp32_onnx, "--weights", fmt, "--method", m, "--calib", calib_yaml, "--calib-samples", "256",
                   "--out", q, "--quiet", "--threads", str(a.threads)]
            log("$ " + " ".join(cmd))
            subprocess.run(cmd, check=True, capture_output=True)
            r[m] = qcast_eval(q)
        qat = copy.deepcopy(fp32)
        qt.quantize_modules(qat, {"weights": fmt})
        log(f"QAT {fmt} ({a.qat_epochs} epochs)")
        train(qat, xtr, ytr, a.qat_epochs, 2e-4, a.seed + 1, log)
        r["qat_torch"] = accuracy(qat, xte, yte)
        qat_onnx = os.path.join(a.out, "qat.onnx")
        export(qat, qat_onnx)
        r["qat"] = qcast_eval(qat_onnx, fmt)
        # qcast evaluates the QAT weights with the fake-quant they were trained with: the same accuracy as
        # PyTorch's own forward (a few flipped near-ties at most, from summation order).
        if abs(r["qat"] - r["qat_torch"]) > 0.002:
            failures.append(f"{fmt}: qcast eval {r['qat']} vs PyTorch {r['qat_torch']} of the QAT model")
        if a.lsq:
            # QAT with learned step sizes (LSQ): one scale per output channel on the format's element.
            lsq = copy.deepcopy(fp32)
            qt.quantize_modules(lsq, {"weights": fmt}, lsq=True)
            log(f"QAT+LSQ {fmt} ({a.qat_epochs} epochs)")
            train(lsq, xtr, ytr, a.qat_epochs, 2e-4, a.seed + 1, log)
            r["qat_lsq_torch"] = accuracy(lsq, xte, yte)
            lsq_onnx = os.path.join(a.out, "qat_lsq.onnx")
            export_quantized(lsq, lsq_onnx)
            r["qat_lsq"] = qcast_eval(lsq_onnx)
            if abs(r["qat_lsq"] - r["qat_lsq_torch"]) > 0.002:
                failures.append(f"{fmt}: qcast eval {r['qat_lsq']} vs PyTorch {r['qat_lsq_torch']} of the LSQ model")
        res["formats"][fmt] = r
        log(f"{fmt}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()))
    json.dump(res, open(os.path.join(a.out, "results.json"), "w"), indent=2)
    methods = a.methods.split(",")
    cols = len(methods) + 1 + (1 if a.lsq else 0)
    print(f"\n| weights | " + " | ".join(f"PTQ {m}" for m in methods) + " | QAT (STE) |" + (" QAT (LSQ) |" if a.lsq else ""))
    print("|---|" + "---|" * cols)
    print(f"| fp32 ({a.epochs} + {a.qat_epochs} epochs) | {res['fp32']['qcast']:.4f} |" + " |" * (cols - 1))
    for fmt, r in res["formats"].items():
        print(f"| {fmt} | " + " | ".join(f"{r[m]:.4f}" for m in methods) + f" | {r['qat']:.4f} |" +
              (f" {r['qat_lsq']:.4f} |" if a.lsq else ""))
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
