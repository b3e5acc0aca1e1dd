#!/usr/bin/env python3
"""`qcast sweep --report`: the HTML report loads in headless Chromium with the network cut off, with no
console or script error, and every chart draws marks.

Usage: test_sweep_report.py QCAST_BINARY SHARED_DIR  (exit 77 = skipped: npm unreachable for the plotting
libraries (tools/report/fetch.sh), no chromium, or the shared models absent)
The page reports its own state: #status becomes "ok: N charts" once every vega-embed promise resolved
(else "failed"), and #errors lists window errors and console.error calls. The DOM after rendering is read
with chromium --dump-dom; every chart <div> must hold an <svg> with at least one mark element.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

from _sweep_support import ROOT, lenet_spec


def main():
    qcast, shared = sys.argv[1], sys.argv[2]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("skip: no chromium")
        return 77
    m = os.path.join(shared, "models", "lenet5-mnist.onnx")
    if not os.path.exists(m):
        print("skip: shared models absent")
        return 77
    r = subprocess.run(["bash", os.path.join(ROOT, "tools", "report", "fetch.sh")])
    if r.returncode == 77:
        print("skip: npm unreachable")
        return 77
    if r.returncode != 0:
        print("FAIL: tools/report/fetch.sh")
        return 1
    spec_text = lenet_spec(shared, "[{}, {weights: int8@fp32/ch0}, {weights: mxfp4}, {weights: int4@fp16/g32}]", "[rtn]")
    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "spec.yaml")
        with open(spec, "w") as f:
            f.write(spec_text)
        html = os.path.join(tmp, "report.html")
        env = dict(os.environ, QCAST_REPORT_JS=os.path.join(ROOT, "tools", "report", "node_modules"))
        subprocess.run([qcast, "sweep", spec, "--report", html, "--threads", "1", "--quiet"], check=True, capture_output=True, env=env)
        text = open(html, encoding="utf-8").read()
        fails = []
        if re.search(r'<script[^>]+src=|<link[^>]+href=', text):
            fails.append("the report references external files")
        prof = os.path.join(tmp, "profile")
        p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
                            "--proxy-bypass-list=<-loopback>", f"--user-data-dir={prof}", "--virtual-time-budget=20000",
                            "--dump-dom", "file://" + html], capture_output=True, text=True, timeout=180)
        dom = p.stdout
        st = re.search(r'<p id="status">([^<]*)</p>', dom)
        errs = re.search(r'<pre id="errors">([^<]*)</pre>', dom)
        n = len(re.findall(r'<div class="chart[^"]*" id="c\d+"', dom))
        if not st or st.group(1) != f"ok: {n} charts" or n < 3:
            fails.append(f"status {st.group(1) if st else None!r}, {n} chart divs")
        if errs and errs.group(1).strip():
            fails.append(f"errors on the page: {errs.group(1)[:500]}")
        for k in range(n):
            mt = re.search(rf'id="c{k}".*?</svg>', dom, re.S)
            if not mt or not re.search(r'class="mark-(symbol|rect|line|group)[^"]*role-mark', mt.group(0)) or \
                    not re.search(r'<path', mt.group(0)):
                fails.append(f"chart c{k} draws no marks")
    for f in fails:
        print("FAIL:", f)
    print("ok" if not fails else f"{len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
