#!/usr/bin/python3
"""Tailor on the Fashion-MNIST ResNet (issue 16's third experiment; Weng et al., arXiv 2301.07247).

The small ResNet of examples/qat_vs_ptq.py (a 3x3 stem, basic blocks of 16, 32 and 64 channels, the last two at
stride 2 with 1x1 projections) is trained in fp32 with its skip connections, then altered two ways, each
retrained with knowledge distillation from the trained original (loss = (1 - alpha) CE + alpha T^2 KL of the
softened outputs, T = 4, alpha = 0.5):
  - SkipRemover: the blocks' skips are removed one at a time, first block first, with --epochs-per-step epochs
    of distillation after each removal (a removed downsampling skip takes its projection with it);
  - SkipShortener: every block's skip, which spans two convolutions, becomes two skips spanning one each
    (y1 = relu(bn1(conv1 x) + proj x), y = relu(bn2(conv2 y1) + y1)), then distillation.
Each model is exported to ONNX and evaluated by `qcast eval` (which must equal PyTorch's accuracy) and priced by
`qcast cost --skips keep` on examples/arch/eyeriss_like.yaml (docs/cost.md): the skips qcast finds in the graph,
the on-chip FIFOs of a layer-pipelined design, the held tensors, and the DRAM spill of a layer-by-layer PE array.

    /usr/bin/python3 examples/tailor.py --qcast build/qcast --out results/tailor
    /usr/bin/python3 examples/tailor.py --qcast build/qcast --out /tmp/tailor --small    # CI size

Prints a markdown table (docs/results.md) and writes OUT/results.json. Deterministic for a seed.
"""
import argparse
import copy
import json
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import qat_vs_ptq as Q  # noqa: E402  (data, the block's shape, training helpers)


class TailorBlock(Q.Block):
    """qat_vs_ptq's basic block (same parameters, so a trained block loads as is) whose skip is "long" (the input
    added after both convolutions), "short" (two skips, one per convolution) or "none"."""

    def __init__(self, cin, cout, stride, mode="long"):
        super().__init__(cin, cout, stride)
        self.mode = mode

    def shortcut(self, x):
        return x if self.skip is None else self.skip(x)

    def forward(self, x):
        if self.mode == "short":
            y = torch.relu(self.bn1(self.conv1(x)) + self.shortcut(x))
            return torch.relu(self.bn2(self.conv2(y)) + y)
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y if self.mode == "none" else y + self.shortcut(x))

    def drop_skip(self):
        self.mode = "none"
        self.skip = None  # a removed projection is gone from the model (and from its export)


class TailorResNet(Q.SmallResNet):
    def __init__(self, modes=("long", "long", "long")):
        super().__init__()
        self.blocks = torch.nn.Sequential(TailorBlock(16, 16, 1, modes[0]), TailorBlock(16, 32, 2, modes[1]),
                                          TailorBlock(32, 64, 2, modes[2]))


def distill(student, teacher, x, y, epochs, lr, seed, log, T=4.0, alpha=0.5):
    """qat_vs_ptq's training loop with the distillation loss against `teacher`'s softened outputs."""
    teacher.eval()

    def loss(out, xb, yb):
        with torch.no_grad():
            soft = torch.log_softmax(teacher(xb) / T, 1)
        kd = torch.nn.functional.kl_div(torch.log_softmax(out / T, 1), soft, log_target=True, reduction="batchmean")
        return (1 - alpha) * torch.nn.functional.cross_entropy(out, yb) + alpha * T * T * kd

    Q.train(student, x, y, epochs, lr, seed, log, loss_fn=loss)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qcast", default=os.path.join(os.path.dirname(HERE), "build", "qcast"))
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--arch", default=os.path.join(HERE, "arch", "eyeriss_like.yaml"))
    ap.add_argument("--out", default="results/tailor")
    ap.add_argument("--epochs", type=int, default=3, help="fp32 training epochs of the original")
    ap.add_argument("--epochs-per-step", type=int, default=1, help="distillation epochs after each alteration")
    ap.add_argument("--train-limit", type=int, default=20000)
    ap.add_argument("--test-limit", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", action="store_true", help="CI size: 2000 training images, 1 epoch each, 1000 test images")
    a = ap.parse_args()
    if a.small:
        a.train_limit, a.epochs, a.epochs_per_step, a.test_limit, a.threads = 2000, 1, 1, 1000, 1  # CTest runs two at a time
    loaded = Q.fashion_mnist(a.data, a.train_limit, a.test_limit, a.out)
    if loaded is None:
        return 77
    xtr, ytr, xte, yte, test_yaml, _ = loaded
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    def run(*cmd):
        return json.loads(subprocess.run([a.qcast] + list(cmd), check=True, capture_output=True, text=True).stdout)

    failures, rows = [], []

    def measure(name, model, epochs):
        path = os.path.join(a.out, name + ".onnx")
        Q.export_onnx(model, path, (1, 1, 28, 28))
        acc = Q.accuracy(model, xte, yte)
        ev = run("eval", path, "--data", test_yaml, "--limit", str(a.test_limit), "--json", "--quiet", "--threads", str(a.threads))
        cost = run("cost", "--arch", a.arch, "--model", path, "--skips", "keep", "--samples", "300", "--refine", "50", "--json", "--quiet")
        sk = cost["skip_connections"]
        spans = sorted({len(s["branch"]) for s in sk["skips"]})
        r = {"epochs": epochs, "torch": acc, "qcast": ev["accuracy"], "skips": sk["count"], "spans": spans,
             "held_bytes": sum(s["held_bytes"] for s in sk["skips"]), "fifo_bytes": sk["dataflow"]["skip_fifo_bytes"],
             "fifo_share": sk["dataflow"]["skip_fifo_share"], "spill_bytes": sk["pe_array"]["dram_spill_bytes"],
             "dram_bytes": sk["pe_array"]["layers_dram_bytes"] + sk["pe_array"]["dram_spill_bytes"],
             "energy_pj": cost["total"]["energy_pj"]}
        if abs(r["torch"] - r["qcast"]) > 0.002:
            failures.append(f"{name}: qcast eval {r['qcast']} differs from PyTorch {r['torch']}")
        rows.append((name, r))
        log(f"{name}: accuracy {acc:.4f} (qcast {r['qcast']:.4f}), {r['skips']} skips, FIFOs {r['fifo_bytes'] / 1024:.2f} KiB, "
            f"held {r['held_bytes'] / 1024:.1f} KiB, spill {r['spill_bytes'] / 1024:.1f} KiB")
        return r

    log(f"training the original ({len(xtr)} images, {a.epochs} epochs)")
    torch.manual_seed(a.seed)
    original = TailorResNet()
    Q.train(original, xtr, ytr, a.epochs, 1e-3, a.seed, log)
    base = measure("original", original, a.epochs)
    if base["skips"] != 3 or base["spans"] != [2]:
        failures.append(f"original: qcast cost found {base['skips']} skips spanning {base['spans']} layers, expected 3 spanning 2")

    # SkipRemover: one block at a time, distilling after each.
    removed = copy.deepcopy(original)
    for k, blk in enumerate(removed.blocks):
        blk.drop_skip()
        log(f"SkipRemover: block {k} without its skip")
        distill(removed, original, xtr, ytr, a.epochs_per_step, 2e-4, a.seed + 1 + k, log)
    rem = measure("skip_remover", removed, a.epochs + len(removed.blocks) * a.epochs_per_step)
    if rem["skips"] != 0:
        failures.append(f"skip_remover: qcast cost still finds {rem['skips']} skips")

    # SkipShortener: every skip spans one convolution.
    short = copy.deepcopy(original)
    for blk in short.blocks:
        blk.mode = "short"
    log("SkipShortener: every skip spans one convolution")
    distill(short, original, xtr, ytr, len(short.blocks) * a.epochs_per_step, 2e-4, a.seed + 11, log)
    sho = measure("skip_shortener", short, a.epochs + len(short.blocks) * a.epochs_per_step)
    if sho["skips"] != 6 or sho["spans"] != [1]:
        failures.append(f"skip_shortener: qcast cost found {sho['skips']} skips spanning {sho['spans']}, expected 6 spanning 1")

    # The same training budget without altering anything: what the distillation epochs alone are worth.
    if not a.small:
        longer = copy.deepcopy(original)
        distill(longer, original, xtr, ytr, len(longer.blocks) * a.epochs_per_step, 2e-4, a.seed + 21, log)
        measure("original_distilled", longer, a.epochs + len(longer.blocks) * a.epochs_per_step)

    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"schema": 1, "settings": vars(a), "results": dict(rows)}, f, indent=1)
    print("| model | epochs | test accuracy (qcast eval) | skips (layers spanned) | (a) skip FIFOs KiB (share of on-chip) |"
          " held tensors KiB | (b) DRAM spill KiB (share of DRAM traffic) | energy uJ |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        spans = "/".join(map(str, r["spans"])) if r["spans"] else "-"
        print(f"| {name} | {r['epochs']} | {r['qcast']:.4f} | {r['skips']} ({spans}) | {r['fifo_bytes'] / 1024:.2f} "
              f"({100 * r['fifo_share']:.1f} %) | {r['held_bytes'] / 1024:.1f} | {r['spill_bytes'] / 1024:.1f} "
              f"({100 * r['spill_bytes'] / r['dram_bytes']:.1f} %) | {r['energy_pj'] / 1e6:.2f} |")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
