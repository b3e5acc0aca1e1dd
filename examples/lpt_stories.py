#!/usr/bin/python3
"""Low-precision training from scratch (issue 16's second experiment): the stories260K architecture (llama2.c:
dim 64, 5 layers, 8 heads / 4 KV heads, SwiGLU 172, vocab 512, tied classifier) trained on the TinyStories
excerpt in ../shared with every GEMM of every transformer-block Linear (forward, dX and dW) in

  fp32 | MXFP8 (weights and activations e4m3, gradients e5m2) | MXFP4 naive | MXFP4 + inner Hadamard (IHT) |
  MXFP4 + AdaHOP (IHT, or IHT + outlier extraction per GEMM)

through qcast.lpt (docs/python.md). The token embedding / classifier (tied), the norms and the attention
score products stay in float32, as in the paper's setting. Each configuration starts from the same
initialisation and sees the same batches; the validation loss is the mean NLL of qcast's perplexity protocol
(each of the first --val-stories stories encoded with BOS, truncated to --seq-len, every next token predicted)
computed with the configuration's own forward pass; the training stories are the rest.

Checks (exit 1 on failure): the fp32 model, exported to llama2.c's format, has the same validation
perplexity under `qcast eval` as here (this checks the tokenizer, the architecture and the export), and so
has the MXFP4-naive model under `qcast eval --recipe` with MXFP4 weights and activations (qcast's own
fake-quant of the forward pass); every configuration's loss falls.

    /usr/bin/python3 examples/lpt_stories.py --qcast build/qcast --out results/lpt           # docs/results.md
    /usr/bin/python3 examples/lpt_stories.py --qcast build/qcast --out /tmp/lpt --small      # CI size

Writes OUT/results.json, OUT/loss.vl.json (a Vega-Lite chart of the loss curves; OUT/loss.svg too when
tools/report/node_modules has Vega, see tools/report/fetch.sh) and prints a markdown table.
"""
import argparse
import dataclasses
import heapq
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "build", "python"))
from qcast import lpt  # noqa: E402

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB = 64, 172, 5, 8, 4, 512


class Tokenizer:
    """llama2.c's tokenizer (tok512.bin): BOS, a dummy-prefix space, code points (byte fallback +3), then
    greedy merges, best score first and leftmost on ties (llama2.c's encode, done with a heap)."""

    def __init__(self, path, vocab_size):
        data = open(path, "rb").read()
        off = 4
        self.vocab, self.scores, self.index = [], [], {}
        for i in range(vocab_size):
            score, n = struct.unpack_from("<fi", data, off)
            off += 8
            piece = data[off:off + n].split(b"\0")[0]  # llama2.c compares C strings
            off += n
            self.vocab.append(piece)
            self.scores.append(score)
            self.index.setdefault(piece, i)

    def encode(self, text):
        tok = [1]
        if text:
            tok.append(self.index[b" "])
        for ch in text:
            b = ch.encode("utf-8")
            i = self.index.get(b)
            tok.extend([i] if i is not None else [c + 3 for c in b])
        n = len(tok)
        nxt = list(range(1, n)) + [-1]
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap = []

        def push(i):
            j = nxt[i]
            if j != -1:
                m = self.index.get(self.vocab[tok[i]] + self.vocab[tok[j]])
                if m is not None:
                    heapq.heappush(heap, (-self.scores[m], i, tok[i], tok[j], m))

        for i in range(n):
            push(i)
        while heap:
            _, i, ti, tj, m = heapq.heappop(heap)
            j = nxt[i]
            if not alive[i] or j == -1 or tok[i] != ti or tok[j] != tj:
                continue  # stale: one side was merged since
            tok[i] = m
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] != -1:
                prv[nxt[j]] = i
            if prv[i] != -1:
                push(prv[i])
            push(i)
        return [t for t, a in zip(tok, alive) if a]


def stories(path):
    text = open(path, encoding="utf-8").read()
    return [s.strip() for s in text.split("<|endoftext|>") if s.strip()]


class RMSNorm(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        hd = DIM // HEADS
        self.wq = torch.nn.Linear(DIM, DIM, bias=False)
        self.wk = torch.nn.Linear(DIM, KV_HEADS * hd, bias=False)
        self.wv = torch.nn.Linear(DIM, KV_HEADS * hd, bias=False)
        self.wo = torch.nn.Linear(DIM, DIM, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        hd = DIM // HEADS
        q = self.wq(x).view(B, T, HEADS, hd)
        k = self.wk(x).view(B, T, KV_HEADS, hd)
        v = self.wv(x).view(B, T, KV_HEADS, hd)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(HEADS // KV_HEADS, dim=2)  # query head h reads KV head h // 2 (llama2.c)
        v = v.repeat_interleave(HEADS // KV_HEADS, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        att = ((q * (1.0 / math.sqrt(hd))) @ k.transpose(-1, -2)).masked_fill(causal_mask(T), float("-inf")).softmax(-1)
        return self.wo((att @ v).transpose(1, 2).reshape(B, T, DIM))


class FeedForward(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = torch.nn.Linear(DIM, HIDDEN, bias=False)
        self.w2 = torch.nn.Linear(HIDDEN, DIM, bias=False)
        self.w3 = torch.nn.Linear(DIM, HIDDEN, bias=False)

    def forward(self, x):
        return self.w2(torch.nn.functional.silu(self.w1(x)) * self.w3(x))


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attention_norm, self.ffn_norm = RMSNorm(DIM), RMSNorm(DIM)
        self.attention, self.feed_forward = Attention(), FeedForward()

    def forward(self, x, cos, sin):
        x = x + self.attention(self.attention_norm(x), cos, sin)
        return x + self.feed_forward(self.ffn_norm(x))


_MASKS = {}


def causal_mask(T):
    if T not in _MASKS:
        _MASKS[T] = torch.ones(T, T, dtype=torch.bool).triu(1)
    return _MASKS[T]


def rope(x, cos, sin):
    """llama2.c's RoPE: adjacent pairs (2j, 2j + 1) of each head, frequency 10000^(-2j / head_size)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).flatten(-2)


class Llama(torch.nn.Module):
    """The names of qcast's LLaMA layers (layers.N.attention.wq, ..., output = the tied embedding)."""

    def __init__(self, seq_len):
        super().__init__()
        self.tok_embeddings = torch.nn.Embedding(VOCAB, DIM)
        self.layers = torch.nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = RMSNorm(DIM)
        hd = DIM // HEADS
        freq = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = torch.arange(seq_len, dtype=torch.float32)[:, None] * freq[None, :]
        self.register_buffer("cos", ang.cos()[None, :, None, :], persistent=False)
        self.register_buffer("sin", ang.sin()[None, :, None, :], persistent=False)
        # llama2.c's train.py initialisation: N(0, 0.02), residual projections N(0, 0.02 / sqrt(2 L)).
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * LAYERS) if name.endswith(("wo.weight", "w2.weight")) else 0.02
                torch.nn.init.normal_(p, 0.0, std)

    def forward(self, tokens):
        T = tokens.shape[1]
        x = self.tok_embeddings(tokens)
        for blk in self.layers:
            x = blk(x, self.cos[:, :T], self.sin[:, :T])
        return self.norm(x) @ self.tok_embeddings.weight.t()


def llama2c_order():
    """The state-dict names of Llama in the order llama2.c's legacy .bin stores the weights (shared classifier)."""
    L = range(LAYERS)
    names = ["tok_embeddings.weight"] + [f"layers.{i}.attention_norm.weight" for i in L]
    names += [f"layers.{i}.attention.{w}.weight" for w in ("wq", "wk", "wv", "wo") for i in L]
    names += [f"layers.{i}.ffn_norm.weight" for i in L]
    names += [f"layers.{i}.feed_forward.{w}.weight" for w in ("w1", "w2", "w3") for i in L]
    return names + ["norm.weight"]


def export_llama2c(model, seq_len, path):
    """llama2.c's legacy .bin (header, weights in its order, the RoPE tables; shared classifier)."""
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    parts = [sd[name] for name in llama2c_order()]
    hd = DIM // HEADS
    parts.append(np.zeros((seq_len, hd // 2), np.float32))  # freq_cis_real / imag: read past by llama2.c
    parts.append(np.zeros((seq_len, hd // 2), np.float32))
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, seq_len))
        for p in parts:
            f.write(np.ascontiguousarray(p, dtype="<f4").tobytes())


def load_llama2c(path):
    """A llama2.c legacy .bin of the stories260K shape (shared classifier) into Llama."""
    with open(path, "rb") as f:
        head = struct.unpack("<7i", f.read(28))
        w = np.frombuffer(f.read(), dtype="<f4")
    if head[:6] != (DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB):
        raise SystemExit(f"{path}: not the stories260K shape {head}")
    model = Llama(head[6])
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    sd, off = {}, 0
    for name in llama2c_order():
        n = int(np.prod(shapes[name]))
        sd[name] = torch.from_numpy(w[off:off + n].reshape(shapes[name]).copy())
        off += n
    model.load_state_dict(sd)
    return model, head[6]


def val_nll(model, val):
    """Total NLL and predicted tokens over the validation stories (qcast's perplexity protocol)."""
    nll, n = 0.0, 0
    with torch.no_grad():
        for toks in val:
            t = torch.tensor([toks])
            logp = torch.log_softmax(model(t[:, :-1]).double(), -1)
            nll -= float(logp[0, torch.arange(len(toks) - 1), t[0, 1:]].sum())
            n += len(toks) - 1
    return nll, n


CONFIGS = {
    "fp32": None,
    "mxfp8": lpt.LptConfig(weight="mxfp8", act="mxfp8", grad="mxfp8_e5m2"),
    "mxfp4": lpt.LptConfig.uniform("mxfp4"),
    "mxfp4+IHT": lpt.LptConfig.uniform("mxfp4", "hadamard"),
    "mxfp4+AdaHOP": lpt.LptConfig.uniform("mxfp4", "adahop"),
}


def train(name, cfg, init_state, train_stream, val, args):
    torch.manual_seed(args.seed)
    model = Llama(args.seq_len)
    model.load_state_dict(init_state)
    if cfg is not None:
        lpt.swap_linears(model, dataclasses.replace(cfg, threads=args.threads))  # results do not depend on it
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(args.seed)  # the same batches for every configuration
    curve, val_curve = [], []
    t0 = time.time()
    for step in range(1, args.steps + 1):
        warm = min(1.0, step / args.warmup)
        frac = (step - 1) / max(1, args.steps - 1)
        for g in opt.param_groups:
            g["lr"] = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        starts = rng.integers(0, len(train_stream) - args.seq_len - 1, args.batch)
        chunk = torch.from_numpy(np.stack([train_stream[s:s + args.seq_len + 1] for s in starts]).astype(np.int64))
        logits = model(chunk[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), chunk[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        curve.append(float(loss))
        if step % args.eval_every == 0 or step == args.steps:
            nll, n = val_nll(model, val)
            val_curve.append((step, nll / n))
            if sys.stderr.isatty():
                el = time.time() - t0
                print(f"\r{name}: step {step}/{args.steps} train {curve[-1]:.3f} val {nll / n:.3f} "
                      f"ETA {el / step * (args.steps - step):.0f} s   ", end="", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return model, curve, val_curve, time.time() - t0


def qcast_ppl(qcast, model_path, tok, data, limit, extra):
    out = subprocess.run([qcast, "eval", model_path, "--tokenizer", tok, "--data", "text:" + data, "--limit", str(limit),
                          "--json"] + extra, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qcast", required=True)
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--val-stories", type=int, default=50)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="CI size: 16 steps of 4 x 64 tokens, 4 validation stories")
    args = ap.parse_args()
    if args.small:
        args.steps, args.eval_every, args.val_stories, args.batch, args.seq_len, args.warmup = 16, 16, 4, 4, 64, 4
        args.threads = 1  # CTest runs two tests at a time on two cores
    data = os.path.join(args.shared, "data", "tinystories", "valid-excerpt.txt")
    tok_path = os.path.join(args.shared, "models", "tok512.bin")
    if not os.path.exists(data) or not os.path.exists(tok_path):
        print(f"skip: {data} or {tok_path} missing (../shared)")
        sys.exit(77)
    names = args.configs.split(",")
    for n in names:
        if n not in CONFIGS:
            sys.exit(f"unknown configuration '{n}' ({', '.join(CONFIGS)})")
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    tok = Tokenizer(tok_path, VOCAB)
    all_stories = stories(data)
    val = [tok.encode(s)[:args.seq_len] for s in all_stories[:args.val_stories]]
    train_stream = np.concatenate([np.array(tok.encode(s), np.int32) for s in all_stories[args.val_stories:]])
    print(f"{len(all_stories) - args.val_stories} training stories ({len(train_stream)} tokens), "
          f"{args.val_stories} validation stories ({sum(len(v) - 1 for v in val)} predicted tokens)", file=sys.stderr)
    torch.manual_seed(args.seed)
    init_state = Llama(args.seq_len).state_dict()

    results, failures = {}, []
    # The PyTorch model and tokenizer against qcast on a model neither of us trained: the real stories260K.
    ref_path = os.path.join(args.shared, "models", "stories260K.bin")
    ref, ref_seq = load_llama2c(ref_path)
    ref_val = [tok.encode(s)[:ref_seq] for s in all_stories[:args.val_stories]]
    nll, n = val_nll(ref, ref_val)
    q = qcast_ppl(args.qcast, ref_path, tok_path, data, args.val_stories, [])
    print(f"stories260K: PyTorch val loss {nll / n:.6f} on {n} tokens, qcast eval {q['nll']:.6f} on {q['tokens']}",
          file=sys.stderr)
    if q["tokens"] != n or abs(q["nll"] - nll / n) > 2e-4:
        failures.append(f"stories260K.bin: PyTorch {nll / n:.6f} ({n} tokens) vs qcast eval {q['nll']:.6f} ({q['tokens']})")
    with tempfile.TemporaryDirectory(prefix="qcast-lpt-") as tmp:
        for name in names:
            model, curve, val_curve, secs = train(name, CONFIGS[name], init_state, train_stream, val, args)
            r = {"train_loss": curve, "val_loss": val_curve, "seconds": secs, "final_val_loss": val_curve[-1][1],
                 "final_val_ppl": math.exp(val_curve[-1][1])}
            if CONFIGS[name] is not None:
                r["strategies"] = lpt.strategy_summary(model)
            head = float(np.mean(curve[:3]))
            tail = float(np.mean(curve[-3:]))
            if not tail < head - 0.1:
                failures.append(f"{name}: the training loss did not fall ({head:.3f} -> {tail:.3f})")
            # qcast evaluates the same weights: fp32 as is, mxfp4 with its own fake-quant of the forward pass.
            check = {"fp32": [], "mxfp4": ["--recipe", os.path.join(tmp, "mxfp4.yaml")]}.get(name)
            if check is not None:
                path = os.path.join(tmp, name + ".bin")
                export_llama2c(model, args.seq_len, path)
                with open(os.path.join(tmp, "mxfp4.yaml"), "w") as f:
                    f.write("weights: mxfp4\nactivations: mxfp4\nskip: [output]\n")
                q = qcast_ppl(args.qcast, path, tok_path, data, args.val_stories, check)
                mine = r["final_val_loss"]
                theirs = q["nll"]
                if q["tokens"] != sum(len(v) - 1 for v in val):
                    failures.append(f"{name}: qcast eval predicted {q['tokens']} tokens, PyTorch {sum(len(v) - 1 for v in val)}")
                r["qcast_eval_val_loss"] = theirs
                if abs(theirs - mine) > 2e-4 * max(1.0, abs(mine)):
                    failures.append(f"{name}: qcast eval's validation loss {theirs:.6f} differs from PyTorch's {mine:.6f}")
            results[name] = r
            print(f"{name}: final val loss {r['final_val_loss']:.4f} (ppl {r['final_val_ppl']:.2f}), {secs:.0f} s"
                  + (f", qcast eval {r['qcast_eval_val_loss']:.4f}" if "qcast_eval_val_loss" in r else ""), file=sys.stderr)

    meta = {k: getattr(args, k) for k in ("steps", "batch", "seq_len", "lr", "warmup", "val_stories", "seed", "threads")}
    write_atomic(os.path.join(args.out, "results.json"), json.dumps({"schema": 1, "settings": meta, "results": results}, indent=1))
    spec = chart(results, args)
    write_atomic(os.path.join(args.out, "loss.vl.json"), json.dumps(spec))
    render_svg(spec, os.path.join(args.out, "loss.svg"))

    print("| training GEMMs | final val loss | val perplexity | vs fp32 | AdaHOP: GEMMs with OE (fwd / dgrad / wgrad) | time |")
    print("|---|---|---|---|---|---|")
    base = results.get("fp32", {}).get("final_val_loss")
    for name in names:
        r = results[name]
        oe = ""
        if name.endswith("AdaHOP"):
            s = r["strategies"]
            oe = " / ".join(f"{s[g]['strategy'].get('IHT+OE', 0)}/{sum(s[g]['strategy'].values())}" for g in lpt.GEMMS)
        d = f"{r['final_val_loss'] - base:+.4f}" if base is not None else ""
        print(f"| {name} | {r['final_val_loss']:.4f} | {r['final_val_ppl']:.2f} | {d} | {oe} | {r['seconds']:.0f} s |")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def chart(results, args):
    rows = []
    for name, r in results.items():
        k = max(1, args.steps // 100)  # the training loss as a running mean over k steps
        c = r["train_loss"]
        for s in range(k, len(c) + 1, k):
            rows.append({"config": name, "step": s, "loss": float(np.mean(c[s - k:s])), "split": "train"})
        for s, v in r["val_loss"]:
            rows.append({"config": name, "step": s, "loss": v, "split": "validation"})
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "title": "stories260K from scratch on TinyStories: every block GEMM in the format",
            "data": {"values": rows}, "width": 300, "height": 220,
            "facet": {"column": {"field": "split", "sort": ["train", "validation"]}},
            "spec": {"mark": {"type": "line", "point": False},
                     "encoding": {"x": {"field": "step", "type": "quantitative"},
                                  "y": {"field": "loss", "type": "quantitative", "scale": {"zero": False}},
                                  "color": {"field": "config", "sort": list(results)}}}}


def render_svg(spec, path):
    """Vega-Lite -> SVG with the Vega that `qcast sweep --report` uses (tools/report), when installed."""
    mods = os.environ.get("QCAST_REPORT_JS", os.path.join(ROOT, "tools", "report", "node_modules"))
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(mods, "vega")) or not os.path.isdir(os.path.join(mods, "vega-lite")):
        return
    js = ("const vega=require('vega'),vl=require('vega-lite');let s='';process.stdin.on('data',d=>s+=d);"
          "process.stdin.on('end',async()=>{const v=new vega.View(vega.parse(vl.compile(JSON.parse(s)).spec),"
          "{renderer:'none'});process.stdout.write(await v.toSVG());});")
    svg = subprocess.run([node, "-e", js], input=json.dumps(spec), capture_output=True, text=True,
                         env=dict(os.environ, NODE_PATH=mods), check=True).stdout
    write_atomic(path, svg)


if __name__ == "__main__":
    main()
