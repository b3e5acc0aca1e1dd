#!/usr/bin/python3
"""A straightforward PyTorch implementation of GPTQ (the published reference algorithm, float32),
timed on the same problem as `qcast_bench --benchmark_filter=Gptq`: a 4096x4096 layer, 2048
calibration tokens, int4 symmetric per-group-128 scales (scale = amax / 7, codes -8..7).

Usage: /usr/bin/python3 bench/gptq_torch.py [--threads 2] [--rows 4096] [--cols 4096] [--tokens 2048]
Prints one JSON line: seconds for the Hessian, the Cholesky part and the column loop, and the total.
"""
import argparse, json, math, time

import torch


def quantize(w, scale):
    return torch.clamp(torch.round(w / scale), -8, 7) * scale


def gptq(W, H, blocksize=128, percdamp=0.01, groupsize=128, act_order=False):
    W = W.clone()
    H = H.clone()
    cols = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    if act_order:
        perm = torch.argsort(torch.diag(H), descending=True)
        W = W[:, perm]
        H = H[perm][:, perm]
    Q = torch.zeros_like(W)
    t0 = time.perf_counter()
    damp = percdamp * torch.mean(torch.diag(H))
    H[range(cols), range(cols)] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    t1 = time.perf_counter()
    scale = None
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if (i1 + i) % groupsize == 0:
                g = W[:, (i1 + i):(i1 + i + groupsize)]
                scale = g.abs().amax(dim=1) / 7.0
                scale[scale == 0] = 1.0
            q = quantize(w, scale)
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    t2 = time.perf_counter()
    if act_order:
        invperm = torch.argsort(perm)
        Q = Q[:, invperm]
    return Q, t1 - t0, t2 - t1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--act-order", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    W = torch.randn(a.rows, a.cols, generator=g) * 0.02
    X = torch.randn(a.tokens, a.cols, generator=g)
    t0 = time.perf_counter()
    H = 2.0 * X.t().matmul(X) / a.tokens
    th = time.perf_counter() - t0
    t0 = time.perf_counter()
    Q, tchol, tloop = gptq(W, H, act_order=a.act_order)
    tg = time.perf_counter() - t0
    err = ((W - Q).matmul(X.t())).pow(2).sum().item()
    print(json.dumps({"impl": "torch", "torch": torch.__version__, "threads": a.threads, "rows": a.rows,
                      "cols": a.cols, "tokens": a.tokens, "act_order": a.act_order, "hessian_s": round(th, 3),
                      "cholesky_s": round(tchol, 3), "loop_s": round(tloop, 3), "gptq_s": round(tg, 3),
                      "total_s": round(th + tg, 3), "out_err": err}))


if __name__ == "__main__":
    main()
