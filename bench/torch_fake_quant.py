#!/usr/bin/python3
"""Speed of qcast's PyTorch fake-quant against a plain-PyTorch implementation of the same MX formats
(issue 16, item 4), and the overhead of quantized training steps over fp32 steps.

1. Fake-quant of training-step tensors (activations, weights, gradients of a transformer layer and of the
   stories260K step) in mxfp4 and mxfp8 (e4m3): `qcast.torch.fake_quant(x, fmt, round="away")` against
   `mx_fake_quant_torch`, written here after microxcaling's `_quantize_mx` (shared exponent floor(log2 amax)
   minus the element's emax, element rounding to nearest with ties away, saturation). The two must agree
   bit for bit on every tensor (checked; exit 1 otherwise), so the comparison is of equal work. Same thread
   count on both sides (torch.set_num_threads and qcast's threads). Alternating rounds, best of --repeat
   per round; the table gives the range over rounds.
2. Training steps (forward + backward + optimizer) of the PTQ-vs-QAT CNN (batch 128) in fp32 and with MXFP4
   QAT (qcast.torch.quantize_modules, weights and activations), and of the stories260K step of
   examples/lpt_stories.py (batch 8 x 128 tokens) in fp32, MXFP4 and MXFP4 + AdaHOP (qcast.lpt).

    /usr/bin/python3 bench/torch_fake_quant.py --threads 2 --rounds 3
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "build", "python"))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import qcast.torch as qt  # noqa: E402
from qcast import lpt  # noqa: E402

ELEMENTS = {"mxfp4": (2, 3, 6.0), "mxfp8": (4, 5, 448.0)}  # microxcaling's (ebits, mbits, max_norm)


def mx_fake_quant_torch(x, fmt, block=32):
    """MX fake-quant along the last axis in plain PyTorch (microxcaling's algorithm, round 'nearest')."""
    ebits, mbits, max_norm = ELEMENTS[fmt]
    emax = 2 ** (ebits - 1)  # the element's largest exponent: e2m1 2, e4m3 8
    shape = x.shape
    a = x.reshape(-1, block)
    amax = a.abs().amax(1, keepdim=True)
    shared = torch.floor(torch.log2(amax + (amax == 0).to(a.dtype))) - emax
    shared = shared.clamp(-127, 127)
    a = a / torch.exp2(shared)
    min_exp = -(2 ** (ebits - 1)) + 2
    private = torch.floor(torch.log2(a.abs() + (a == 0).to(a.dtype))).clamp_min(min_exp)
    step = torch.exp2(private - (mbits - 2))
    a = torch.sign(a) * torch.floor(a.abs() / step + 0.5) * step
    a = a.clamp(-max_norm, max_norm)
    return (a * torch.exp2(shared)).reshape(shape)


def best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def fake_quant_table(args):
    torch.manual_seed(0)
    # (name, shape): a transformer layer at d = 768, 4096 tokens, and the stories260K step (8 x 128 tokens).
    tensors = [("activation 4096x768", (4096, 768)), ("weight 3072x768", (3072, 768)),
               ("gradient 4096x3072", (4096, 3072)), ("stories260K act 1024x64", (1024, 64)),
               ("stories260K ffn 1024x192", (1024, 192))]
    rows = []
    for fmt in ("mxfp4", "mxfp8"):
        for name, shape in tensors:
            x = torch.randn(*shape) * torch.exp(torch.randn(shape[0], 1))
            a = qt.fake_quant(x, fmt, round="away", threads=args.threads)
            b = mx_fake_quant_torch(x, fmt)
            if not torch.equal(a, b):
                bad = int((a != b).sum())
                sys.exit(f"{fmt} {name}: the plain-PyTorch peer differs from qcast in {bad} of {x.numel()} values")
            tq, tt = [], []
            for _ in range(args.rounds):
                tq.append(best_of(lambda: qt.fake_quant(x, fmt, round="away", threads=args.threads), args.repeat))
                tt.append(best_of(lambda: mx_fake_quant_torch(x, fmt), args.repeat))
            mb = x.numel() * 4 / 1e6
            ratios = [t / q for q, t in zip(tq, tt)]
            rows.append((fmt, name, mb / max(tq), mb / min(tq), mb / max(tt), mb / min(tt), min(ratios), max(ratios)))
    print(f"fake-quant, {args.threads} threads, {args.rounds} rounds x best of {args.repeat}; MB/s of float32 input "
          "(min-max over rounds); both sides give the same values (checked)\n")
    print("| format | tensor | qcast.torch MB/s | plain PyTorch MB/s | qcast / PyTorch |")
    print("|---|---|---|---|---|")
    for fmt, name, q0, q1, t0, t1, r0, r1 in rows:
        print(f"| {fmt} | {name} | {q0:.0f}-{q1:.0f} | {t0:.0f}-{t1:.0f} | {r0:.1f}-{r1:.1f}x |")


def step_table(args):
    import lpt_stories as S
    import qat_vs_ptq as Q

    def cnn_step(recipe):
        torch.manual_seed(0)
        model = Q.SmallCNN()
        if recipe:
            qt.quantize_modules(model, recipe)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))

        def step():
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    def lm_step(cfg):
        torch.manual_seed(0)
        model = S.Llama(128)
        if cfg is not None:
            lpt.swap_linears(model, cfg)
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        t = torch.randint(0, S.VOCAB, (8, 129))

        def step():
            logits = model(t[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, S.VOCAB), t[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    cases = [("CNN batch 128", "fp32", cnn_step(None)),
             ("CNN batch 128", "MXFP4 QAT (weights + activations)",
              cnn_step({"weights": "mxfp4", "activations": "mxfp4"})),
             ("stories260K 8x128 tokens", "fp32", lm_step(None)),
             ("stories260K 8x128 tokens", "MXFP4 LPT (all block GEMMs)", lm_step(lpt.LptConfig.uniform("mxfp4"))),
             ("stories260K 8x128 tokens", "MXFP4 LPT + AdaHOP", lm_step(lpt.LptConfig.uniform("mxfp4", "adahop")))]
    times = {i: [] for i in range(len(cases))}
    for _ in range(args.rounds):
        for i, (_, _, fn) in enumerate(cases):
            fn()  # warm-up
            times[i].append(best_of(fn, args.repeat))
    print(f"\ntraining step (forward + backward + optimizer), {args.threads} threads, ms (min-max over rounds)\n")
    print("| model | step | ms | vs fp32 |")
    print("|---|---|---|---|")
    base = None
    for i, (model, what, _) in enumerate(cases):
        t = times[i]
        if what == "fp32":
            base = t
        ratio = [a / b for a, b in zip(t, base)]
        print(f"| {model} | {what} | {1e3 * min(t):.1f}-{1e3 * max(t):.1f} | {min(ratio):.2f}-{max(ratio):.2f}x |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-steps", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fake_quant_table(args)
    if not args.skip_steps:
        step_table(args)


if __name__ == "__main__":
    main()
