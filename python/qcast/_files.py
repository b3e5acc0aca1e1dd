"""File-level commands (eval, quantize_model, cost) through the qcast CLI.

These take model, dataset and hardware files, as the CLI does; they run the ``qcast`` executable and
return its JSON, so their results are the CLI's by construction (the process runs outside the GIL).
Keyword arguments become flags: ``calib_samples=64`` -> ``--calib-samples 64``, ``True`` -> a bare flag,
``None`` / ``False`` -> omitted, a list -> the flag repeated.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from typing import Any, Dict, List, Optional

from ._qcast import Error

_HERE = os.path.dirname(os.path.abspath(__file__))


def cli_path() -> str:
    """The qcast executable used by eval / quantize_model / cost: $QCAST_CLI, the one installed in this
    package (pip install), the build tree's (build/python/qcast -> build/qcast), else `qcast` on PATH."""
    env = os.environ.get("QCAST_CLI")
    if env:
        return env
    for cand in (os.path.join(_HERE, "bin", "qcast"), os.path.join(_HERE, "..", "..", "qcast")):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    found = shutil.which("qcast")
    if found:
        return found
    raise Error("the qcast executable was not found: build it (scripts/build) or set QCAST_CLI")


def _flags(options: Dict[str, Any]) -> List[str]:
    out: List[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                out += [flag, str(v)]
        else:
            out += [flag, str(value)]
    return out


def _run(args: List[str]) -> str:
    proc = subprocess.run([cli_path()] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        msg = proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}"
        if msg.startswith("qcast: "):
            msg = msg[len("qcast: "):]
        raise Error(msg)
    return proc.stdout


def eval(model: str, data: str, **options: Any) -> Dict[str, Any]:  # noqa: A001
    """`qcast eval MODEL --data DATA ... --json`: accuracy / NLL of a model under a recipe (weights=,
    acts=, recipe=, limit=, threads=, ...). Returns the JSON object the CLI prints."""
    return json.loads(_run(["eval", str(model), "--data", str(data), "--json"] + _flags(options)))


def quantize_model(model: str, out: str, calib: str, method: str = "rtn", **options: Any) -> Dict[str, Any]:
    """`qcast quantize MODEL --method METHOD --calib CALIB --out OUT ...`: post-training quantization to a
    packed .safetensors (or .gguf) file. Returns the JSON report (recipe, per-layer error, timings, and the
    evaluation when eval= is given)."""
    with tempfile.TemporaryDirectory(prefix="qcast-py-") as tmp:
        report = os.path.join(tmp, "report.json")
        _run(["quantize", str(model), "--method", method, "--calib", str(calib), "--out", str(out),
              "--report", report, "--quiet"] + _flags(options))
        with open(report, encoding="utf-8") as f:
            return json.load(f)


def cost(**options: Any) -> Dict[str, Any]:
    """`qcast cost ... --json`: energy / cycles of a layer (problem=, arch=, map= / search=) or a model
    (model=, recipe=) on an architecture. Returns the JSON object the CLI prints."""
    return json.loads(_run(["cost", "--json"] + _flags(options)))
