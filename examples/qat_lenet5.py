#!/usr/bin/python3
"""PTQ vs QAT on LeNet-5 / MNIST (issue 16's first experiment, the LeNet-5 part).

../shared has the trained LeNet-5 (lenet5-mnist.onnx) and the MNIST *test* set only, so this part fine-tunes the
trained model instead of training one: the last 5 000 test images (#5000..9999) are the fine-tuning and
calibration set, the first 5 000 the evaluation set (the split of the lenet5 PTQ table in docs/results.md).
With equal training for every column:
  - PTQ: the fp32 model fine-tuned --epochs more in fp32, exported, `qcast quantize --method rtn|gptq` (256
    calibration images from #5000), `qcast eval` on the first 5 000;
  - QAT (STE): the same fine-tuning with the Conv / Linear layers swapped by `qcast.torch.quantize_modules`, then
    `qcast eval --weights F` of the exported master weights (checked equal to PyTorch's own accuracy);
  - QAT (LSQ): learned per-channel scales on the format's element, exported as the weights it computes with.
The PyTorch LeNet-5 reads the ONNX model's own initializers, and the images are preprocessed as
examples/data/mnist-lenet5.yaml says (bilinear 28 -> 32, normalized): qcast eval of the unmodified model must
give PyTorch's accuracy (checked).

    /usr/bin/python3 examples/qat_lenet5.py --qcast build/qcast --out results/qat-lenet5
    /usr/bin/python3 examples/qat_lenet5.py --qcast build/qcast --out /tmp/qat-lenet5 --small   # CI size
"""
import argparse
import copy
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import qat_vs_ptq as Q  # noqa: E402  (idx reader, training loop, accuracy, the format list, qcast.torch)

qt = Q.qt


class LeNet5(torch.nn.Module):
    """The layers of ../shared/models/lenet5-mnist.onnx under its parameter names (convnet.c1, ..., fc.f7)."""

    def __init__(self):
        super().__init__()
        self.convnet = torch.nn.Sequential()
        self.convnet.add_module("c1", torch.nn.Conv2d(1, 6, 5))
        self.convnet.add_module("relu1", torch.nn.ReLU())
        self.convnet.add_module("s2", torch.nn.MaxPool2d(2))
        self.convnet.add_module("c3", torch.nn.Conv2d(6, 16, 5))
        self.convnet.add_module("relu3", torch.nn.ReLU())
        self.convnet.add_module("s4", torch.nn.MaxPool2d(2))
        self.convnet.add_module("c5", torch.nn.Conv2d(16, 120, 5))
        self.convnet.add_module("relu5", torch.nn.ReLU())
        self.fc = torch.nn.Sequential()
        self.fc.add_module("f6", torch.nn.Linear(120, 84))
        self.fc.add_module("relu6", torch.nn.ReLU())
        self.fc.add_module("f7", torch.nn.Linear(84, 10))

    def forward(self, x):
        return self.fc(torch.flatten(self.convnet(x), 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qcast", default=os.path.join(os.path.dirname(HERE), "build", "qcast"))
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(HERE), "..", "shared"))
    ap.add_argument("--out", default="results/qat-lenet5")
    ap.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (fp32, QAT and LSQ alike)")
    ap.add_argument("--formats", default=",".join(Q.FORMATS))
    ap.add_argument("--methods", default="rtn,gptq")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", action="store_true", help="CI size: 1 epoch, int4 and ternary, rtn, 1000 evaluation images")
    a = ap.parse_args()
    evaluate = 5000
    if a.small:
        a.epochs, a.formats, a.methods, evaluate, a.threads = 1, "int4@fp32/ch0,ternary@fp32/ch0", "rtn", 1000, 1  # CTest: two at a time
    model_path = os.path.join(a.shared, "models", "lenet5-mnist.onnx")
    mnist = os.path.join(a.shared, "data", "mnist")
    if not os.path.exists(model_path) or not os.path.exists(os.path.join(mnist, "t10k-images-idx3-ubyte.gz")):
        print(f"SKIP: {model_path} or the MNIST test set in {mnist} is missing (../shared)")
        return 77
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.out, exist_ok=True)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    images = torch.from_numpy(Q.idx(os.path.join(mnist, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255.0)[:, None]
    images = torch.nn.functional.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    x = ((images - 0.1307) / 0.3081).numpy()
    y = Q.idx(os.path.join(mnist, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    xev, yev, xft, yft = x[:evaluate], y[:evaluate], x[5000:], y[5000:]
    data = os.path.join(os.path.dirname(HERE), "examples", "data", "mnist-lenet5.yaml")

    def qcast_eval(path, fmt=None):
        cmd = [a.qcast, "eval", path, "--data", data, "--data-root", mnist, "--limit", str(evaluate), "--json", "--quiet",
               "--threads", str(a.threads)] + (["--weights", fmt] if fmt else [])
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["accuracy"]

    trained = LeNet5()
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(model_path).graph.initializer}
    trained.load_state_dict({k: torch.from_numpy(inits[k].copy()) for k in trained.state_dict()})
    trained.eval()
    failures = []
    base_torch, base_qcast = Q.accuracy(trained, xev, yev), qcast_eval(model_path)
    log(f"trained LeNet-5: PyTorch {base_torch:.4f}, qcast eval {base_qcast:.4f} on {evaluate} images")
    if abs(base_torch - base_qcast) > 0.002:
        failures.append(f"the trained model: PyTorch {base_torch} vs qcast eval {base_qcast} (preprocessing or layers differ)")

    fp32 = copy.deepcopy(trained)
    Q.train(fp32, xft, yft, a.epochs, 2e-4, a.seed, log)
    fp32_onnx = os.path.join(a.out, "fp32.onnx")
    Q.export_onnx(fp32, fp32_onnx, (1, 1, 32, 32), "input")
    res = {"trained": base_qcast, "fp32": qcast_eval(fp32_onnx), "formats": {}}
    for fmt in a.formats.split(","):
        r = {}
        for m in a.methods.split(","):
            q = os.path.join(a.out, "ptq.safetensors")
            subprocess.run([a.qcast, "quantize", fp32_onnx, "--weights", fmt, "--method", m, "--calib", data, "--data-root", mnist,
                            "--calib-offset", "5000", "--calib-samples", "256", "--out", q, "--quiet", "--threads", str(a.threads)],
                           check=True, capture_output=True)
            r[m] = qcast_eval(q)
        for lsq in (False, True):
            qat = copy.deepcopy(trained)
            qt.quantize_modules(qat, {"weights": fmt}, lsq=lsq)
            Q.train(qat, xft, yft, a.epochs, 2e-4, a.seed, log)
            torch_acc = Q.accuracy(qat, xev, yev)
            path = os.path.join(a.out, "qat.onnx")
            plain = LeNet5()
            plain.load_state_dict(qat.state_dict(), strict=False)
            if lsq:  # the weights LSQ computes with (learned scale x element codes), evaluated as they are
                with torch.no_grad():
                    for name, mod in qat.named_modules():
                        if isinstance(mod, (qt.QuantLinear, qt.QuantConv2d)):
                            plain.get_submodule(name).weight.copy_(mod.quantized_weight())
            Q.export_onnx(plain, path, (1, 1, 32, 32), "input")
            acc = qcast_eval(path, None if lsq else fmt)
            key = "qat_lsq" if lsq else "qat"
            r[key] = acc
            if abs(acc - torch_acc) > 0.002:
                failures.append(f"{fmt} {key}: qcast eval {acc} vs PyTorch {torch_acc}")
        res["formats"][fmt] = r
        log(f"{fmt}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()))
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    methods = a.methods.split(",")
    print("| weights | " + " | ".join(f"PTQ {m}" for m in methods) + " | QAT (STE) | QAT (LSQ) |")
    print("|---|" + "---|" * (len(methods) + 2))
    print(f"| fp32 (trained: {res['trained']:.4f}; + {a.epochs} epochs) | {res['fp32']:.4f} |" + " |" * (len(methods) + 1))
    for fmt, r in res["formats"].items():
        print(f"| {fmt} | " + " | ".join(f"{r[m]:.4f}" for m in methods) + f" | {r['qat']:.4f} | {r['qat_lsq']:.4f} |")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
