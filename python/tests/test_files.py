#!/usr/bin/env python3
"""qcast.eval / quantize_model / cost (file-level, through the CLI) return what the CLI prints.

Usage: test_files.py QCAST_CLI SHARED_DIR   (exit 77 when ../shared is absent)
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _support  # noqa: E402
import qcast  # noqa: E402

ROOT = _support.ROOT


def need(path):
    if not os.path.exists(path):
        raise _support.Skip(f"{path} absent")
    return path


def without_timings(d):
    if isinstance(d, dict):
        return {k: without_timings(v) for k, v in d.items() if "time" not in k and not k.endswith("_s") and "second" not in k}
    if isinstance(d, list):
        return [without_timings(v) for v in d]
    return d


def test_cost_equals_cli():
    os.environ["QCAST_CLI"] = _support.cli()
    d = need(os.path.join(_support.shared(), "conformance", "timeloop", "01-model-conv1d-2level"))
    args = dict(arch=f"{d}/arch/2level.arch.yaml", problem=f"{d}/prob/conv1d.prob.yaml",
                map=f"{d}/map/conv1d-2level-os.map.yaml", ert=f"{d}/ref-output/os/timeloop-model.ERT.yaml")
    got = qcast.cost(**args)
    cli = json.loads(_support.run_cli("cost", "--json", *sum((["--" + k, v] for k, v in args.items()), [])))
    assert without_timings(got) == without_timings(cli) and got["schema"] >= 1


def test_quantize_model_then_eval_equals_cli():
    os.environ["QCAST_CLI"] = _support.cli()
    model = need(os.path.join(_support.shared(), "models", "lenet5-mnist.onnx"))
    mnist = need(os.path.join(_support.shared(), "data", "mnist"))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "q.safetensors")
        report = qcast.quantize_model(model, out, f"mnist:{mnist}", method="rtn", weights="mxfp4",
                                      calib_samples=16, calib_offset=5000, threads=2)
        assert os.path.isfile(out) and isinstance(report, dict) and report, report
        assert len(qcast.load_packed(out).quantized) >= 4
        got = qcast.eval(out, f"mnist:{mnist}", limit=200, threads=2)
        cli = json.loads(_support.run_cli("eval", out, "--data", f"mnist:{mnist}", "--limit", "200", "--json"))
        assert without_timings(got) == without_timings(cli)
        fp = qcast.eval(model, f"mnist:{mnist}", limit=200)
        assert "schema" in fp
    try:
        qcast.eval(os.path.join(ROOT, "no-such-model.onnx"), f"mnist:{mnist}")
    except qcast.Error as e:
        assert "no-such-model.onnx" in str(e), str(e)
    else:
        raise AssertionError("eval of a missing model did not raise qcast.Error")


if __name__ == "__main__":
    sys.exit(_support.main(dict(globals())))
