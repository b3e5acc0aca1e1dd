#!/usr/bin/env python3
"""Speed of a LLaMA-shaped model with random weights: qcast fp32, qcast on Q8_0 / Q4_0 / Q4_K GGUF files with the fp32
path (dequantized weights) and with the low-bit kernels (--kernel lowbit), and llama.cpp (node-llama-cpp 3.21.1,
bench/llamacpp_speed.mjs) on the same GGUF files and thread counts, side by side: generation and prompt processing.

Usage: /usr/bin/python3 bench/llama_speed.py [--qcast build/qcast] [--shared ../shared] [--work /tmp/qcast-llama-speed]
       [--dim 1024] [--hidden 2816] [--layers 12] [--heads 16] [--steps 128] [--threads 1,2] [--rounds 3]
       [--types Q8_0,Q4_0,Q4_K]   (also Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, Q6_K, IQ4_NL, MXFP4, NVFP4)
Speed needs no trained weights: the model is random (normal, std 0.02), written once as a llama2.c checkpoint
(vocab 512, so ../shared/models/tok512.bin tokenizes) and quantized by `qcast quantize --weights
int8@fp16/b32 | int4@fp16/b32 | q4_k --out X.gguf` (Q8_0 / Q4_0 / Q4_K). Each round runs every configuration once, one after
the other (alternating); each run is `qcast generate --steps N --temperature 0 --json` and reports its
tokens/s (the model is loaded before the clock starts). The table gives the min-max over rounds and the range
of the per-round ratio against qcast fp32 at the same thread count.
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np


def write_random_llama(path, dim, hidden, layers, heads, vocab, seq_len, seed=0):
    rng = np.random.default_rng(seed)
    kv_dim = dim  # n_kv_heads = n_heads
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("7i", dim, hidden, layers, heads, heads, vocab, seq_len))  # vocab > 0: shared classifier

        def w(*shape):
            f.write((rng.standard_normal(shape, dtype=np.float32) * 0.02).astype("<f4").tobytes())

        w(vocab, dim)
        f.write(np.ones((layers, dim), "<f4").tobytes())
        for shape in [(dim, dim), (kv_dim, dim), (kv_dim, dim), (dim, dim)]:
            w(layers, *shape)
        f.write(np.ones((layers, dim), "<f4").tobytes())
        w(layers, hidden, dim)
        w(layers, dim, hidden)
        w(layers, hidden, dim)
        f.write(np.ones(dim, "<f4").tobytes())
        f.write(np.zeros((2, seq_len, dim // heads // 2), "<f4").tobytes())  # legacy freq_cis (unused)
    os.replace(path + ".tmp", path)


def generate(qcast, model, tokenizer, steps, threads, kernel):
    out = subprocess.run([qcast, "generate", model, "--tokenizer", tokenizer, "--steps", str(steps), "--temperature", "0",
                          "--json", "--threads", str(threads), "--kernel", kernel], capture_output=True, text=True, check=True)
    j = json.loads(out.stdout)
    return j["tokens_per_second"], j["lowbit_layers"]


def eval_speed(qcast, model, tokenizer, data, stories, threads, kernel):
    out = subprocess.run([qcast, "eval", model, "--tokenizer", tokenizer, "--data", "text:" + data, "--limit", str(stories), "--json",
                          "--threads", str(threads), "--kernel", kernel], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["tokens_per_second"]


def llamacpp_speed(script, model, threads, n_prompt, n_gen):
    out = subprocess.run(["node", script, model, str(threads), str(n_prompt), str(n_gen), "1"], capture_output=True, text=True,
                         check=True)
    j = json.loads(out.stdout.strip().splitlines()[-1])
    return j["pp_tokens_per_second"], j["tg_tokens_per_second"]


def rng(v):
    return f"{min(v):.1f}-{max(v):.1f}" if max(v) >= 10 else f"{min(v):.2f}-{max(v):.2f}"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--qcast", default=os.path.join(here, "..", "build", "qcast"))
    ap.add_argument("--shared", default=os.path.join(here, "..", "..", "shared"))
    ap.add_argument("--work", default="/tmp/qcast-llama-speed")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=2816)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stories", type=int, default=16, help="stories of the prompt-processing run (qcast eval --limit)")
    ap.add_argument("--prompt", type=int, default=128, help="llama.cpp prompt batch (tokens)")
    ap.add_argument("--no-llamacpp", action="store_true")
    ap.add_argument("--types", default="Q8_0,Q4_0,Q4_K", help="GGUF types to compare with fp32")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    tok = os.path.join(a.shared, "models", "tok512.bin")
    base = os.path.join(a.work, f"random-{a.dim}x{a.layers}.bin")
    if not os.path.exists(base):
        write_random_llama(base, a.dim, a.hidden, a.layers, a.heads, 512, max(a.steps, 256))
    files = {"fp32": base}
    types = a.types.split(",")
    formats = {"Q8_0": "int8@fp16/b32", "Q4_0": "int4@fp16/b32", "Q4_K": "q4_k", "Q4_1": "q4_1", "Q5_0": "q5_0",
               "Q5_1": "q5_1", "Q2_K": "q2_k", "Q3_K": "q3_k", "Q5_K": "q5_k", "Q6_K": "q6_k", "IQ4_NL": "iq4_nl",
               "MXFP4": "mxfp4_ggml", "NVFP4": "nvfp4_ggml"}
    unknown = [t for t in types if t not in formats]
    if unknown:
        ap.error(f"--types: no format for {', '.join(unknown)} (known: {', '.join(formats)})")
    for name, fmt in [(t, formats[t]) for t in types]:
        path = os.path.join(a.work, f"random-{a.dim}x{a.layers}-{name}.gguf")
        if not os.path.exists(path):
            subprocess.run([a.qcast, "quantize", base, "--weights", fmt, "--method", "rtn", "--calib",
                            "text:" + os.path.join(a.shared, "data", "tinystories", "valid-excerpt.txt"), "--calib-samples", "1",
                            "--calib-tokens", "16", "--tokenizer", tok, "--quiet", "--threads", "2", "--out", path], check=True)
        files[name] = path
    configs = [("fp32", "fp32")] + [(t, k) for t in types for k in ("fp32", "lowbit")]
    threads = [int(t) for t in a.threads.split(",")]
    data = os.path.join(a.shared, "data", "tinystories", "valid-excerpt.txt")
    script = os.path.join(here, "llamacpp_speed.mjs")
    have_llamacpp = os.path.isdir(os.path.join(here, "..", "tests", "llamacpp", "node_modules", "node-llama-cpp")) and not a.no_llamacpp
    if not have_llamacpp:
        print("llama.cpp columns left out: node-llama-cpp is not installed (bash tests/llamacpp/run.sh installs it)", file=sys.stderr)
    speed, pp = {}, {}
    for r in range(a.rounds):
        for t in threads:
            for f, k in configs:
                tps, n = generate(a.qcast, files[f], tok, a.steps, t, k)
                speed.setdefault((f, k, t), []).append(tps)
                if k == "lowbit" and n == 0:
                    sys.exit(f"{files[f]}: no layer ran on the low-bit kernels")
                pp.setdefault((f, k, t), []).append(eval_speed(a.qcast, files[f], tok, data, a.stories, t, k))
            if have_llamacpp:
                for f in types:
                    p, g = llamacpp_speed(script, files[f], t, a.prompt, a.steps)
                    speed.setdefault((f, "llama.cpp", t), []).append(g)
                    pp.setdefault((f, "llama.cpp", t), []).append(p)
        print(f"round {r + 1} of {a.rounds} done", file=sys.stderr)
    params = a.layers * (4 * a.dim * a.dim + 3 * a.dim * a.hidden) + 512 * a.dim
    print(f"random LLaMA dim {a.dim}, hidden {a.hidden}, {a.layers} layers, {params / 1e6:.0f}M parameters; tokens/s, min-max over "
          f"{a.rounds} alternating rounds. Generation: qcast generate --steps {a.steps} / llama.cpp {a.steps} greedy tokens after BOS. "
          f"Prompt: qcast eval of {a.stories} TinyStories stories (stories in parallel on the threads) / llama.cpp one batch of "
          f"{a.prompt} tokens.")
    print("| weights | kernel | threads | generation | vs qcast fp32 | vs llama.cpp | prompt | vs llama.cpp |")
    print("|---|---|---|---|---|---|---|---|")
    for t in threads:
        for f, k in configs + ([(t, "llama.cpp") for t in types] if have_llamacpp else []):
            v = speed[(f, k, t)]
            ratio = [x / y for x, y in zip(v, speed[("fp32", "fp32", t)])]
            vs_l = vs_lp = "-"
            if have_llamacpp and f != "fp32" and k != "llama.cpp":
                vs_l = rng([x / y for x, y in zip(v, speed[(f, "llama.cpp", t)])]) + "x"
                vs_lp = rng([x / y for x, y in zip(pp[(f, k, t)], pp[(f, "llama.cpp", t)])]) + "x"
            print(f"| {f} | {k} | {t} | {rng(v)} | {rng(ratio)}x | {vs_l} | {rng(pp[(f, k, t)])} | {vs_lp} |")


if __name__ == "__main__":
    main()
