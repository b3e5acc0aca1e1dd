#!/usr/bin/env python3
"""Differential test of `qcast cost` against Timeloop itself, on random cases (not in CI: Timeloop is built by
hand, outside the repository, as ../shared/timeloop-oracle.md describes).

Each case is a random CNN layer (R S P Q C M N, strides), a random architecture (DRAM, maybe a global buffer, maybe
a spatial container with meshX x meshY PEs, one or two buffers inside, a MAC), a random ERT, and a random mapping
(every prime factor of every bound dealt to a temporal level or to the X / Y axis of the fanout; random loop orders;
random bypass). Both tools evaluate the same files; the case agrees when both refuse it, or both accept it with
the same per-level, per-data-space scalar reads / fills / updates, the same cycles and fJ/compute within 1 %.

Usage: timeloop_diff.py QCAST TIMELOOP_MODEL_WRAPPER CONVERTER [--cases N] [--seed S] [--keep DIR] [--json OUT]
  TIMELOOP_MODEL_WRAPPER runs timeloop-model with its libraries (e.g. a script that sets LD_LIBRARY_PATH);
  CONVERTER is ../shared/tools/timeloop_v04_to_legacy.py.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile

import yaml

DIMS = ["C", "M", "R", "S", "N", "P", "Q"]
COMPARED = [0]  # numbers compared over the run
DS = ["Weights", "Inputs", "Outputs"]


def primes(n):
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


def problem(rng):
    b = {"C": rng.choice([1, 2, 3, 4, 8, 16]), "M": rng.choice([1, 2, 4, 6, 8, 16]), "R": rng.choice([1, 2, 3]),
         "S": rng.choice([1, 3]), "N": rng.choice([1, 1, 2]), "P": rng.choice([1, 2, 4, 6, 8]), "Q": rng.choice([1, 2, 4, 7])}
    inst = dict(b)
    inst["Wstride"] = rng.choice([1, 1, 2])
    inst["Hstride"] = rng.choice([1, 1, 2])
    return {"problem": {"version": 0.4, "shape": {
        "name": "conv", "dimensions": DIMS,
        "coefficients": [{"name": n, "default": 1} for n in ["Wstride", "Hstride", "Wdilation", "Hdilation"]],
        "data_spaces": [
            {"name": "Weights", "projection": [[["C"]], [["M"]], [["R"]], [["S"]]]},
            {"name": "Inputs", "projection": [[["N"]], [["C"]], [["R", "Wdilation"], ["P", "Wstride"]], [["S", "Hdilation"], ["Q", "Hstride"]]]},
            {"name": "Outputs", "projection": [[["N"]], [["M"]], [["Q"]], [["P"]]], "read_write": True}]},
        "instance": inst}}, b


class Tag(dict):
    pass


def tag_representer(tag):
    return lambda dumper, data: dumper.represent_mapping(tag, dict(data))


class Container(Tag):
    pass


class Component(Tag):
    pass


yaml.add_representer(Container, tag_representer("!Container"))
yaml.add_representer(Component, tag_representer("!Component"))


def architecture(rng):
    """Returns (arch YAML dict, storage levels outermost first as (name, instances, is_dummy, meshX, meshY), mac)."""
    nodes = [Container(name="System", attributes={"technology": "45nm", "global_cycle_seconds": 1e-9})]
    levels = [("DRAM", 1, False, 1, 1)]
    nodes.append(Component(name="DRAM", **{"class": "DRAM"}, attributes={"width": 64, "datawidth": 8}))
    if rng.random() < 0.8:
        w = rng.choice([8, 16, 32, 64])
        nodes.append(Component(name="GLB", **{"class": "SRAM"}, attributes={"depth": rng.choice([64, 256, 1024, 8192]), "width": w, "datawidth": 8}))
        levels.append(("GLB", 1, False, 1, 1))
    inst = 1
    if rng.random() < 0.75:
        mx, my = rng.choice([1, 2, 4]), rng.choice([1, 2, 4])
        if mx * my == 1:
            mx = 2
        nodes.append(Container(name="PE", spatial={"meshX": mx, "meshY": my}))
        levels.append(("PE", 1, True, mx, my))
        inst = mx * my
    for k in range(rng.choice([1, 1, 2])):
        w = rng.choice([8, 8, 16, 32])
        nodes.append(Component(name="Buf%d" % k, **{"class": rng.choice(["regfile", "SRAM"])},
                               attributes={"depth": rng.choice([4, 16, 64, 256]), "width": w, "datawidth": 8}))
        levels.append(("Buf%d" % k, inst, False, 1, 1))
    nodes.append(Component(name="MAC", **{"class": "intmac"}, attributes={"datawidth": 8}))
    return {"architecture": {"version": 0.4, "nodes": nodes}}, levels, inst


def ert(rng, levels, mac_inst):
    tables = []
    args = {"global_cycle_seconds": 1e-9, "action_latency_cycles": 1}
    for name, inst, dummy, _, _ in levels:
        if dummy:
            continue
        e = round(rng.uniform(0.1, 200), 3)
        tables.append({"name": "System_top_level.%s[1..%d]" % (name, inst), "actions": [
            {"name": "read", "arguments": args, "energy": e},
            {"name": "write", "arguments": args, "energy": round(e * rng.uniform(0.5, 1.5), 3)},
            {"name": "update", "arguments": args, "energy": round(e * rng.uniform(0.5, 1.5), 3)},
            {"name": "leak", "arguments": args, "energy": 0.0}]})
    tables.append({"name": "System_top_level.MAC[1..%d]" % mac_inst, "actions": [
        {"name": "compute", "arguments": args, "energy": round(rng.uniform(0.1, 3), 3)}]})
    return {"ERT": {"version": "0.4", "tables": tables}}


def mapping(rng, bounds, levels):
    temporal = {name: {d: 1 for d in DIMS} for name, _, dummy, _, _ in levels if not dummy}
    spatial_x = {d: 1 for d in DIMS}
    spatial_y = {d: 1 for d in DIMS}
    sp = [l for l in levels if l[2]]
    mx, my = (sp[0][3], sp[0][4]) if sp else (1, 1)
    names = [l[0] for l in levels if not l[2]]
    for d in DIMS:
        for p in primes(bounds[d]):
            # Outer levels more often: inner buffers are small, and a case both tools refuse for capacity
            # tests less than one they evaluate.
            choices = [n for k, n in enumerate(names) for _ in range(max(1, 3 - k))]
            px = 1
            for v in spatial_x.values():
                px *= v
            py = 1
            for v in spatial_y.values():
                py *= v
            if sp and px * p <= mx:
                choices += ["X"] * 2
            if sp and py * p <= my:
                choices += ["Y"] * 2
            c = rng.choice(choices)
            if c == "X":
                spatial_x[d] *= p
            elif c == "Y":
                spatial_y[d] *= p
            else:
                temporal[c][d] *= p
    out = []
    for name in names:
        perm = list(DIMS)
        rng.shuffle(perm)
        out.append({"target": name, "type": "temporal", "factors": " ".join("%s=%d" % (d, temporal[name][d]) for d in DIMS),
                    "permutation": "".join(perm)})
    if sp:
        xs = [d for d in DIMS if spatial_x[d] > 1]
        ys = [d for d in DIMS if spatial_y[d] > 1]
        rest = [d for d in DIMS if d not in xs and d not in ys]
        perm = xs + ys + rest
        factors = {d: spatial_x[d] * spatial_y[d] for d in DIMS}
        entry = {"target": sp[0][0], "type": "spatial", "factors": " ".join("%s=%d" % (d, factors[d]) for d in DIMS),
                 "permutation": "".join(perm), "split": len(xs)}
        if ys and rng.random() < 0.2:
            del entry["split"]  # no split: Timeloop puts every loop on meshX, where these may not fit
        out.append(entry)
    for name in names[1:]:
        keep = [ds for ds in DS if rng.random() < 0.7]
        out.append({"target": name, "type": "dataspace", "keep": keep, "bypass": [ds for ds in DS if ds not in keep]})
    return {"mapping": out}


def parse_stats(path):
    counts, fj, cycles, level, ds = {}, {}, None, None, None
    in_levels = in_fj = False
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("Buffer and Arithmetic Levels"):
                in_levels = True
            if line.startswith("Networks"):
                in_levels = False
            m = re.match(r"^=== (\S+) ===\s*$", line)
            if in_levels and m:
                level, ds = m.group(1), None
                continue
            m = re.match(r"^    (\w+):\s*$", line)
            if in_levels and m:
                ds = m.group(1)
                continue
            m = re.search(r"^\s+Scalar (reads|fills|updates) \(per-instance\)\s*:\s*(\d+)", line)
            if in_levels and ds and m:
                counts.setdefault(level, {}).setdefault(ds, {})[m.group(1)] = int(m.group(2))
                continue
            m = re.match(r"^Cycles: (\d+)", line)
            if m:
                cycles = int(m.group(1))
            if line.startswith("fJ/Compute"):
                in_fj = True
                continue
            m = re.match(r"^\s+(\S+)\s+= ([0-9.]+)", line)
            if in_fj and m:
                fj[m.group(1)] = float(m.group(2))
    return counts, fj, cycles


def run_case(args, rng, work):
    prob, bounds = problem(rng)
    arch, levels, inst = architecture(rng)
    tables = ert(rng, levels, inst)
    mp = mapping(rng, bounds, levels)
    files = {}
    for name, doc in (("arch", arch), ("prob", prob), ("map", mp), ("ert", tables)):
        files[name] = os.path.join(work, name + ".yaml")
        with open(files[name], "w") as f:
            yaml.dump(doc, f, sort_keys=False)
    q = subprocess.run([args.qcast, "cost", "--arch", files["arch"], "--problem", files["prob"], "--map", files["map"],
                        "--ert", files["ert"], "--json"], capture_output=True, text=True)
    legacy = os.path.join(work, "legacy.yaml")
    subprocess.run([sys.executable, args.converter, legacy, files["arch"], files["prob"], files["map"]], check=True,
                   capture_output=True)
    out = os.path.join(work, "tl")
    os.makedirs(out, exist_ok=True)
    t = subprocess.run([args.timeloop, legacy, files["ert"], "-o", out], capture_output=True, text=True, cwd=out, timeout=300)
    stats = os.path.join(out, "timeloop-model.stats.txt")
    tl_ok = t.returncode == 0 and os.path.exists(stats)
    q_ok = q.returncode == 0
    if not tl_ok and not q_ok:
        # Both must refuse for a reason about the mapping, not a file either tool failed to read.
        tl_text = t.stdout + t.stderr
        if "ERROR" not in tl_text and "Error" not in tl_text and "not valid" not in tl_text:
            return "Timeloop failed", tl_text.strip().splitlines()[-3:]
        # A capacity refusal names the level and the tile size: both tools must name the same ones.
        m1 = re.search(r"couldn't map level (\S+): mapped tile size (\d+) exceeds", tl_text)
        m2 = re.search(r"tiles at (\S+) need (\d+) words", q.stderr)
        if m1 and m2 and (m1.group(1).rstrip(":"), m1.group(2)) != (m2.group(1), m2.group(2)):
            return "refuse differently", "timeloop: %s %s, qcast: %s %s" % (m1.group(1), m1.group(2), m2.group(1), m2.group(2))
        if bool(m1) != bool(m2):
            return "refuse differently", "timeloop: %s | qcast: %s" % (tl_text.strip().splitlines()[-1:], q.stderr.strip())
        return "both refuse", None
    if tl_ok != q_ok:
        why = (q.stderr.strip().splitlines() or [""])[-1] if not q_ok else (t.stdout + t.stderr).strip().splitlines()[-3:]
        return ("only Timeloop accepts" if tl_ok else "only qcast accepts"), str(why)
    counts, fj, cycles = parse_stats(stats)
    layer = json.loads(q.stdout)["layers"][0]
    diffs = []
    COMPARED[0] += 1
    if layer["cycles"] != cycles:
        diffs.append("cycles qcast %s timeloop %s" % (layer["cycles"], cycles))
    for lv in layer["levels"]:
        name = lv["name"]
        if name in counts:
            for ds, c in counts[name].items():
                mine = lv.get("data_spaces", {}).get(ds)
                if mine is None:
                    if any(c.values()):
                        diffs.append("%s %s: qcast bypasses, timeloop %s" % (name, ds, c))
                    continue
                for k in ("reads", "fills", "updates"):
                    COMPARED[0] += 1
                    if mine[k] != c[k]:
                        diffs.append("%s %s %s: qcast %d timeloop %d" % (name, ds, k, mine[k], c[k]))
        if name in fj and "fj_per_compute" in lv:
            COMPARED[0] += 1
            if abs(lv["fj_per_compute"] - fj[name]) > 0.01 * max(abs(fj[name]), 1e-9) + 0.01:
                diffs.append("%s fJ/compute: qcast %.2f timeloop %.2f" % (name, lv["fj_per_compute"], fj[name]))
    return ("agree" if not diffs else "differ"), "; ".join(diffs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("qcast")
    ap.add_argument("timeloop")
    ap.add_argument("converter")
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", help="keep the files of every case that does not agree here")
    ap.add_argument("--json", help="write the tally and the differing cases as JSON")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tally, bad = {}, []
    for i in range(args.cases):
        with tempfile.TemporaryDirectory() as work:
            outcome, detail = run_case(args, rng, work)
            tally[outcome] = tally.get(outcome, 0) + 1
            if outcome not in ("agree", "both refuse"):
                bad.append({"case": i, "outcome": outcome, "detail": detail})
                print("case %d: %s: %s" % (i, outcome, detail), flush=True)
                if args.keep:
                    dst = os.path.join(args.keep, "case%d" % i)
                    subprocess.run(["cp", "-r", work, dst])
    agree = tally.get("agree", 0) + tally.get("both refuse", 0)
    print("cases %d: %s; agreement %.1f %% (%d numbers compared)" % (
        args.cases, ", ".join("%s %d" % kv for kv in sorted(tally.items())), 100.0 * agree / args.cases, COMPARED[0]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": args.seed, "cases": args.cases, "tally": tally, "differ": bad}, f, indent=1)


if __name__ == "__main__":
    main()
