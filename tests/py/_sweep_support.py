"""Shared by the sweep tests (test_sweep*.py): the repository root, the store's rows without wall times,
and a LeNet-5 spec on the Eyeriss-like architecture."""
import os
import sqlite3

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMES = ("quant_s", "eval_s", "cost_s", "total_s")  # wall times: the only columns allowed to differ


def rows(db):
    """(points without wall times, layers, meta) of a sweep store, in a fixed order."""
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute("PRAGMA table_info(points)")]
    keep = [c for c in cols if c not in TIMES]
    pts = con.execute(f"SELECT {', '.join(keep)} FROM points ORDER BY id").fetchall()
    lay = con.execute("SELECT * FROM layers ORDER BY point, layer").fetchall()
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    con.close()
    return pts, lay, meta


def lenet_spec(shared, formats, methods):
    """A spec sweeping LeNet-5 (200 MNIST images, 16 calibration samples) over `formats` and `methods`
    (YAML flow text) on the Eyeriss-like architecture with a small mapper budget."""
    m = os.path.join(shared, "models", "lenet5-mnist.onnx")
    return f"""models:
  - {{model: {m}, data: "mnist:{shared}/data/mnist", limit: 200, name: lenet5, calib: {{samples: 16}}}}
formats: {formats}
methods: {methods}
archs: [{{arch: {ROOT}/examples/arch/eyeriss_like.yaml, name: eyeriss}}]
mapper: {{samples: 200, refine: 20}}
"""
