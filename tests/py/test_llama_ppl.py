#!/usr/bin/env python3
"""Perplexity of stories260K on TinyStories: qcast vs an independent PyTorch implementation.

Usage: test_llama_ppl.py QCAST_BINARY SHARED_DIR  (exit 77 = skipped: shared material or torch absent)
The reference reads the llama2.c checkpoint and tokenizer itself, tokenizes like llama2.c's encode
(dummy prefix, byte fallback +3, greedy merges by score), and runs the model in float64 with a causal
mask. Protocol: BOS + story, truncated to seq_len, NLL of tokens 1..n-1, perplexity = exp(mean NLL).
All 463 stories of the excerpt by default (about 1.5 min on 2 cores); QCAST_PPL_STORIES=N takes the first N.
"""
import json
import math
import os
import struct
import subprocess
import sys

STORIES = int(os.environ.get("QCAST_PPL_STORIES", "0")) or None  # default: the whole file


def main():
    qcast, shared = sys.argv[1], sys.argv[2]
    model = os.path.join(shared, "models", "stories260K.bin")
    tokp = os.path.join(shared, "models", "tok512.bin")
    text = os.path.join(shared, "data", "tinystories", "valid-excerpt.txt")
    if not all(os.path.exists(p) for p in (model, tokp, text)):
        print("skip: shared material absent")
        return 77
    try:
        import torch
    except ImportError:
        print("skip: torch absent")
        return 77

    # --- checkpoint (legacy llama2.c header) ---
    raw = open(model, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("7i", raw[:28])
    shared_cls = vocab > 0
    vocab = abs(vocab)
    hs = dim // n_heads
    kv_dim = hs * n_kv
    data = torch.frombuffer(bytearray(raw[28:]), dtype=torch.float32).double()
    off = 0

    def take(*shape):
        nonlocal off
        n = 1
        for s in shape:
            n *= s
        t = data[off:off + n].reshape(shape)
        off += n
        return t

    emb = take(vocab, dim)
    rms_att = take(n_layers, dim)
    wq = take(n_layers, dim, dim)
    wk = take(n_layers, kv_dim, dim)
    wv = take(n_layers, kv_dim, dim)
    wo = take(n_layers, dim, dim)
    rms_ffn = take(n_layers, dim)
    w1 = take(n_layers, hidden, dim)
    w2 = take(n_layers, dim, hidden)
    w3 = take(n_layers, hidden, dim)
    rms_final = take(dim)
    take(seq_len * hs // 2)
    take(seq_len * hs // 2)
    wcls = emb if shared_cls else take(vocab, dim)

    # --- tokenizer ---
    tb = open(tokp, "rb").read()
    (max_len,) = struct.unpack("i", tb[:4])
    p = 4
    pieces, scores = [], []
    for _ in range(vocab):
        score, n = struct.unpack("fi", tb[p:p + 8])
        p += 8
        pieces.append(tb[p:p + n].split(b"\0")[0])
        scores.append(score)
        p += n
    index = {}
    for i, s in enumerate(pieces):
        index.setdefault(s, i)

    def encode(s):
        toks = [1]
        b = s.encode("utf-8")
        if b:
            toks.append(index[b" "])
        i = 0
        while i < len(b):  # one UTF-8 code point at a time (at most 4 bytes)
            j = i + 1
            while j < len(b) and (b[j] & 0xC0) == 0x80 and j - i < 4:
                j += 1
            cp = b[i:j]
            if cp in index:
                toks.append(index[cp])
            else:
                toks.extend(c + 3 for c in cp)
            i = j
        body = toks[1:]
        neg = -math.inf

        def pair(k):
            m = index.get(pieces[body[k]] + pieces[body[k + 1]])
            return scores[m] if m is not None else neg

        ps = [pair(k) for k in range(len(body) - 1)]
        while ps:
            best = max(ps)
            if best == neg:
                break
            k = ps.index(best)  # leftmost best, like llama2.c's strict '>'
            body[k] = index[pieces[body[k]] + pieces[body[k + 1]]]
            del body[k + 1]
            del ps[k]
            if k < len(ps):
                ps[k] = pair(k)
            if k > 0:
                ps[k - 1] = pair(k - 1)
        return [1] + body

    # --- model ---
    pos = torch.arange(seq_len, dtype=torch.float64)
    freqs = 1.0 / (10000.0 ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
    ang = torch.outer(pos, freqs)  # [seq, hs/2]
    cos, sin = torch.cos(ang), torch.sin(ang)

    def rms(x, w):
        return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5))

    def rope(x, T):  # x [T, heads, hs], interleaved pairs (2i, 2i+1)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        c, s = cos[:T, None, :], sin[:T, None, :]
        out = torch.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    def forward(tokens):
        T = len(tokens)
        x = emb[torch.tensor(tokens)]
        mask = torch.full((T, T), -math.inf, dtype=torch.float64).triu(1)
        for l in range(n_layers):
            h = rms(x, rms_att[l])
            q = rope((h @ wq[l].T).view(T, n_heads, hs), T)
            k = rope((h @ wk[l].T).view(T, n_kv, hs), T)
            v = (h @ wv[l].T).view(T, n_kv, hs)
            rep = n_heads // n_kv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            att = torch.einsum("thd,uhd->htu", q, k) / math.sqrt(hs) + mask
            att = torch.softmax(att, dim=-1)
            o = torch.einsum("htu,uhd->thd", att, v).reshape(T, dim)
            x = x + o @ wo[l].T
            h = rms(x, rms_ffn[l])
            x = x + (torch.nn.functional.silu(h @ w1[l].T) * (h @ w3[l].T)) @ w2[l].T
        return rms(x, rms_final) @ wcls.T

    content = open(text, "rb").read().decode("utf-8")
    stories = [s.strip() for s in content.split("<|endoftext|>")]
    stories = [s for s in stories if s][:STORIES]
    total, count = 0.0, 0
    with torch.no_grad():
        for s in stories:
            toks = encode(s)[:seq_len]
            if len(toks) < 2:
                continue
            logits = forward(toks[:-1])
            lp = torch.log_softmax(logits, dim=-1)
            tgt = torch.tensor(toks[1:])
            total += -lp[torch.arange(len(tgt)), tgt].sum().item()
            count += len(tgt)
    ref_ppl = math.exp(total / count)

    limit = ["--limit", str(STORIES)] if STORIES else []
    out = subprocess.run([qcast, "eval", model, "--tokenizer", tokp, "--data", "text:" + text, "--json"] + limit,
                         capture_output=True, text=True)
    if out.returncode != 0:
        print("qcast eval failed:", out.stderr)
        return 1
    j = json.loads(out.stdout)
    rel = abs(j["perplexity"] - ref_ppl) / ref_ppl
    print(f"stories {len(stories)} tokens ref {count} qcast {j['tokens']}; perplexity ref {ref_ppl:.6f} qcast {j['perplexity']:.6f} rel diff {rel:.2e}")
    if j["tokens"] != count:
        print("FAIL: token counts differ (tokenizer mismatch)")
        return 1
    if rel > 1e-4:
        print("FAIL: relative difference above 1e-4")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
