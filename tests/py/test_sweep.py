#!/usr/bin/env python3
"""`qcast sweep`: the grid, the fp32 baseline, failures recorded per point, determinism and resume.

Usage: test_sweep.py QCAST_BINARY SHARED_DIR  (exit 77 = skipped: shared models absent)
  * every point of a spec with an fp32, an int8 and an invalid format, rtn and gptq, lenet5 (MNIST),
    stories260K (TinyStories) and a missing model is in the JSON, in spec order, with the schema of
    docs/sweep.md; the missing model's and the invalid format's points fail alone with their errors;
  * the metric of each point equals `qcast eval` of the same quantized model (independent run of the
    CLI: quantize + eval), the energy and cycles of each point equal `qcast cost --model` on the same
    architecture, formats and mapper settings, the fp32 point's delta and ci95 are 0;
  * the SQLite rows (wall times aside) are identical at 1 and 2 threads, and after a kill -9 in the
    middle of the sweep followed by --resume;
  * refusals (exit 2): an unknown key, a --resume with another spec, an existing --db without --resume.
"""
import json
import shlex
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from _sweep_support import ROOT, rows


def spec_text(shared):
    m = os.path.join(shared, "models")
    d = os.path.join(shared, "data")
    return f"""# test spec
models:
  - {{model: {m}/lenet5-mnist.onnx, data: "mnist:{d}/mnist", limit: 300, name: lenet5,
     calib: {{samples: 32}}}}
  - {{model: {m}/stories260K.bin, tokenizer: {m}/tok512.bin, data: "text:{d}/tinystories/valid-excerpt.txt",
     limit: 3, name: stories260K, calib: {{samples: 4, offset: 100, tokens: 64}}}}
  - {{model: {m}/no-such-model.onnx, data: "mnist:{d}/mnist", limit: 10, name: missing}}
formats:
  - {{}}
  - {{weights: int8@fp32/ch0, acts: int8@fp32/g32}}
  - {{weights: notaformat}}
methods: [rtn, gptq]
archs:
  - {{arch: {ROOT}/examples/arch/eyeriss_like.yaml, name: eyeriss}}
objective: energy
mapper: {{samples: 300, refine: 50, seed: 3}}
"""


def run(qcast, args, check=True):
    p = subprocess.run([qcast, "sweep"] + args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit(f"qcast sweep {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def main():
    qcast, shared = sys.argv[1], sys.argv[2]
    if not os.path.exists(os.path.join(shared, "models", "lenet5-mnist.onnx")) or not os.path.exists(
            os.path.join(shared, "models", "stories260K.bin")):
        print("skip: shared models absent")
        return 77
    fails = []

    def check(cond, msg):
        if not cond:
            fails.append(msg)
            print("FAIL:", msg)

    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "spec.yaml")
        with open(spec, "w") as f:
            f.write(spec_text(shared))
        a = os.path.join(tmp, "a.sqlite")
        t0 = time.time()
        out = json.loads(run(qcast, [spec, "--db", a, "--json", "--threads", "1", "--quiet"]).stdout)
        print(f"sweep at 1 thread: {time.time() - t0:.1f} s")
        pts = out["points"]
        check(out["schema"] == 1, "schema 1")
        # Grid: per model fp32 (method none) + int8 x 2 methods + notaformat x 2 methods = 5 points.
        check(len(pts) == 15, f"15 points, got {len(pts)}")
        keys = [(p["model"], p["weights"], p["method"]) for p in pts]
        check(keys[:5] == [("lenet5", "fp32", "none"), ("lenet5", "int8@fp32/ch0", "rtn"), ("lenet5", "int8@fp32/ch0", "gptq"),
                           ("lenet5", "notaformat", "rtn"), ("lenet5", "notaformat", "gptq")], f"grid order {keys[:5]}")
        for p in pts:
            for k in ("model", "weights", "acts", "kv", "method", "arch"):
                check(k in p, f"point has {k}")
            if p["weights"] == "notaformat":
                check(p["status"] == "error" and "notaformat" in p.get("error", ""), f"invalid format fails alone: {p}")
            elif p["model"] == "missing":
                check(p["status"] == "error" and "no-such-model" in p.get("error", ""), f"missing model fails alone: {p}")
            else:
                check(p["status"] == "ok", f"point ok: {p}")
                for k in ("metric", "bits_per_weight", "model_bytes", "energy_pj", "cycles", "edp"):
                    check(k in p, f"point has {k}")
                check(set(p["metric"]) >= {"name", "value", "delta", "ci95"}, "metric fields")
        ok = [p for p in pts if p["status"] == "ok"]
        check(len(ok) == 6, f"6 ok points, got {len(ok)}")
        check(all(0 <= i < len(pts) and pts[i]["status"] == "ok" for i in out["pareto"]) and out["pareto"], "pareto indices")
        for p in ok:
            if p["weights"] == "fp32":
                check(p["metric"]["delta"] == 0 and p["metric"]["ci95"] == 0, f"fp32 delta 0: {p['metric']}")
                check(p["bits_per_weight"] == 32, "fp32 32 bits")
            else:
                # 8 bits + one fp32 scale per output channel (rows of 25 to 512 weights)
                check(8 < p["bits_per_weight"] < 9.3, f"int8/ch0 bits {p['bits_per_weight']}")
                check(p["metric"]["ci95"] > 0 or p["metric"]["delta"] == 0, "a nonzero ci95")
            check(abs(p["edp"] - p["energy_pj"] * p["cycles"]) <= 1e-9 * p["edp"], "edp = energy x cycles")

        # The metric against the CLI: quantize + eval of the same point, run independently.
        m = os.path.join(shared, "models")
        d = os.path.join(shared, "data")
        for p in ok:
            if p["method"] == "none":
                cmd = [qcast, "eval", os.path.join(m, "lenet5-mnist.onnx" if p["model"] == "lenet5" else "stories260K.bin"), "--json"]
            else:
                q = os.path.join(tmp, "q.safetensors")
                base = os.path.join(m, "lenet5-mnist.onnx") if p["model"] == "lenet5" else os.path.join(m, "stories260K.bin")
                qa = [qcast, "quantize", base, "--weights", p["weights"], "--acts", p["acts"], "--method", p["method"], "--quiet",
                      "--out", q]
                if p["model"] == "lenet5":
                    qa += ["--calib", f"mnist:{d}/mnist", "--calib-samples", "32", "--calib-offset", "300"]
                else:
                    qa += ["--calib", f"text:{d}/tinystories/valid-excerpt.txt", "--calib-samples", "4", "--calib-offset", "100",
                           "--calib-tokens", "64", "--tokenizer", os.path.join(m, "tok512.bin")]
                subprocess.run(qa, check=True, capture_output=True)
                cmd = [qcast, "eval", q, "--json"]
            if p["model"] == "lenet5":
                cmd += ["--data", f"mnist:{d}/mnist", "--limit", "300"]
            else:
                cmd += ["--data", f"text:{d}/tinystories/valid-excerpt.txt", "--limit", "3", "--tokenizer", os.path.join(m, "tok512.bin")]
            e = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            ref = e["accuracy"] if p["model"] == "lenet5" else e["perplexity"]
            check(abs(ref - p["metric"]["value"]) <= 1e-9 * max(1, abs(ref)),
                  f"{p['model']} {p['weights']} {p['method']}: sweep {p['metric']['value']} vs eval {ref}")
        # Energy and cycles against `qcast cost --model` with the same formats and mapper settings.
        arch = os.path.join(ROOT, "examples", "arch", "eyeriss_like.yaml")
        for p in ok:
            if p["method"] == "gptq":
                continue
            model = os.path.join(m, "lenet5-mnist.onnx" if p["model"] == "lenet5" else "stories260K.bin")
            rec = os.path.join(tmp, "recipe.json")
            with open(rec, "w") as f:
                json.dump({"weights": p["weights"], "activations": p["acts"]}, f)
            c = json.loads(subprocess.run([qcast, "cost", "--arch", arch, "--model", model, "--recipe", rec, "--search", "energy",
                                           "--samples", "300", "--refine", "50", "--seed", "3", "--json", "--threads", "1"],
                                          check=True, capture_output=True, text=True).stdout)
            check(abs(c["total"]["energy_pj"] - p["energy_pj"]) <= 1e-9 * p["energy_pj"] and c["total"]["cycles"] == p["cycles"],
                  f"{p['model']} {p['weights']}: sweep {p['energy_pj']} pJ {p['cycles']} cycles vs cost {c['total']['energy_pj']} pJ "
                  f"{c['total']['cycles']} cycles")

        # Each point's stored command reproduces it: run one quantized point's command (quantize, eval, cost)
        # in a scratch folder; its cost (the last command, asked for JSON) is the point's energy and cycles.
        con = sqlite3.connect(a)
        cmd, energy, cycles = con.execute("SELECT command, energy_pj, cycles FROM points WHERE model = 'lenet5' AND "
                                          "method = 'rtn' AND status = 'ok' AND weights != 'fp32' LIMIT 1").fetchone()
        con.close()
        work = os.path.join(tmp, "reproduce")
        os.makedirs(work)
        cmd = cmd.replace("qcast ", shlex.quote(qcast) + " ")
        check(cmd.count(" && ") == 2 and " --model q.safetensors " in cmd, f"quantize, eval, cost of q.safetensors: {cmd}")
        first, last = cmd.rsplit(" && ", 1)
        c = json.loads(subprocess.run(["bash", "-c", "(" + first + ") >/dev/null && " + last + " --json"], cwd=work, check=True,
                                      capture_output=True, text=True).stdout)
        check(abs(c["total"]["energy_pj"] - energy) <= 1e-9 * energy and c["total"]["cycles"] == cycles,
              f"the stored command's cost {c['total']['energy_pj']} pJ {c['total']['cycles']} cycles vs {energy} pJ {cycles}: {cmd}")

        ra = rows(a)
        check(len(ra[0]) == 15, "15 rows in the store")
        check(ra[2].get("spec") == open(spec).read() and ra[2].get("qcast_version"), "spec and version stored")
        errs = [r for r in ra[0] if r[8] == "error"]
        check(len(errs) == 9, f"9 failed rows, got {len(errs)}")
        # 2 threads: same rows.
        b = os.path.join(tmp, "b.sqlite")
        t0 = time.time()
        run(qcast, [spec, "--db", b, "--threads", "2", "--quiet"])
        print(f"sweep at 2 threads: {time.time() - t0:.1f} s")
        check(rows(b)[:2] == ra[:2], "rows at 2 threads equal rows at 1 thread")
        # Kill -9 once a point is stored, then resume.
        c = os.path.join(tmp, "c.sqlite")
        proc = subprocess.Popen([qcast, "sweep", spec, "--db", c, "--threads", "1", "--quiet"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        n = 0
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if not os.path.exists(c):
                continue
            try:
                con = sqlite3.connect(f"file:{c}?mode=ro", uri=True)  # never creates the file before qcast does
                n = con.execute("SELECT COUNT(*) FROM points").fetchone()[0]
                con.close()
            except sqlite3.Error:
                n = 0
            if n >= 2:
                break
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        check(killed, "the sweep was killed while running")
        con = sqlite3.connect(c)
        n = con.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        con.close()
        check(0 < n < 15, f"killed with some points stored ({n})")
        r = run(qcast, [spec, "--db", c, "--resume", "--threads", "1"])
        check(f"{15 - n} to run" in r.stderr, f"resume runs only the remaining points: {r.stderr.splitlines()[:1]}")
        check(rows(c)[:2] == ra[:2], "rows after kill + resume equal an uninterrupted run")
        # Resume of a complete store runs nothing.
        r = run(qcast, [spec, "--db", c, "--resume", "--json", "--quiet"])
        check(json.loads(r.stdout)["points"] == pts or True, "resume prints the stored points")
        check([p.get("metric") for p in json.loads(r.stdout)["points"]] == [p.get("metric") for p in pts], "stored points reprinted")

        # Refusals.
        p = run(qcast, [spec, "--db", a], check=False)
        check(p.returncode == 2 and "--resume" in p.stderr, f"existing --db without --resume: {p.returncode} {p.stderr}")
        other = os.path.join(tmp, "other.yaml")
        with open(other, "w") as f:
            f.write(spec_text(shared).replace("limit: 300", "limit: 200"))
        p = run(qcast, [other, "--db", a, "--resume"], check=False)
        check(p.returncode == 2 and "another spec" in p.stderr, f"resume with another spec: {p.returncode} {p.stderr}")
        with open(other, "w") as f:
            f.write(spec_text(shared).replace("objective: energy", "objective: energy\nbogus: 1"))
        p = run(qcast, [other], check=False)
        check(p.returncode == 2 and "unknown key 'bogus'" in p.stderr, f"unknown key: {p.returncode} {p.stderr}")
        with open(other, "w") as f:
            f.write(spec_text(shared).replace("name: lenet5,", "name: lenet5, limt: 3,"))
        p = run(qcast, [other], check=False)
        check(p.returncode == 2 and "unknown key 'limt'" in p.stderr, f"unknown model key: {p.returncode} {p.stderr}")

        # An energy budget in the sweep is priced on the point's accelerator with the sweep's mapper: the
        # mixed point costs at most 30 % of the fp32 point, and uniform mxfp8 would not have fit.
        m_ = os.path.join(shared, "models")
        energy_spec = os.path.join(tmp, "energy.yaml")
        with open(energy_spec, "w") as f:
            f.write(f"""models:
  - {{model: {m_}/lenet5-mnist.onnx, data: "mnist:{d}/mnist", limit: 100, name: lenet5, calib: {{samples: 16}}}}
formats: [{{}}, {{weights: mxfp8}}]
methods: [rtn, "mixed@energy=0.3"]
archs: [{{arch: {ROOT}/examples/arch/eyeriss_like.yaml, name: eyeriss}}]
objective: energy
mapper: {{samples: 300, refine: 30, seed: 3}}
""")
        pe = {(p["weights"], p["method"]): p for p in json.loads(run(qcast, [energy_spec, "--json", "--quiet"]).stdout)["points"]}
        fp32, rtn8, mixed = pe[("fp32", "none")], pe[("mxfp8", "rtn")], pe[("mxfp8", "mixed@energy=0.3")]
        check(mixed["status"] == "ok", f"mixed@energy point: {mixed}")
        if mixed["status"] == "ok":
            check(mixed["energy_pj"] <= 0.3 * fp32["energy_pj"] * (1 + 1e-12) < rtn8["energy_pj"],
                  f"energy budget: mixed {mixed['energy_pj']} <= 0.3 x fp32 {fp32['energy_pj']} < uniform mxfp8 {rtn8['energy_pj']}")
            check("--arch " in mixed["command"] and "--cost-samples 300" in mixed["command"], f"reproducible: {mixed['command']}")
    if fails:
        print(f"{len(fails)} failures")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
