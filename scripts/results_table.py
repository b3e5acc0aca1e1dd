#!/usr/bin/env python3
"""Formats the reports written by scripts/quantize_results into the markdown tables of docs/results.md.
Usage: scripts/results_table.py [OUT=results/quantize]"""
import json, os, sys

out = sys.argv[1] if len(sys.argv) > 1 else "results/quantize"
methods = ["rtn", "search", "gptq", "ed", "rotate+gptq", "lowrank", "mixed@4.5", "quarot+rtn", "quarot+gptq", "rtn+bias", "gptq+bias"]
formats = ["int4@fp16/g32", "mxfp4", "nvfp4", "int3@fp16/g32"]
for model, key, fmt in [("stories", "perplexity", "{:.4f}"), ("lenet", "accuracy", "{:.4f}")]:
    print(f"\n### {model}: {key}\n")
    print("| method | " + " | ".join(formats) + " | W4A8 (mxfp4 w, mxfp8 a) |")
    print("|---" * (len(formats) + 2) + "|")
    for m in methods:
        row = []
        for f in formats + ["mxfp4__mxfp8"]:
            tag = f"{m}__{f.replace('/', '_')}"
            p = os.path.join(out, model, tag + ".json")
            if os.path.exists(p):
                j = json.load(open(p))
                cell = fmt.format(j["eval"][key])
                if "mixed" in j:
                    cell += f" ({j['mixed']['avg_bits']:.2f} b)"
                row.append(cell)
            else:
                row.append("—")
        print(f"| {m} | " + " | ".join(row) + " |")
