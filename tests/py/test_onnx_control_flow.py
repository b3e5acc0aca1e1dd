#!/usr/bin/env python3
"""ONNX control flow (If, Loop, Scan) through `qcast infer`, against PyTorch: scripted modules whose exported graphs
branch on the data (branches of different output shapes, reading the enclosing graph's values) and loop a
data-dependent number of times (carried values, one of them growing), compared with PyTorch's own outputs
(max |diff| <= 1e-4 * max |ref| + 1e-5) on inputs that take each branch; int2 weights must change every
output (the recipe reaches the layers inside the bodies). Then hostile bodies, written with
onnx.helper: an endless Loop and If nested 20 deep must end with exit 2 and a message, not hang or crash.

Usage: test_onnx_control_flow.py QCAST_BINARY [SHARED_DIR]  (exit 77 = skipped; needs no shared material)"""
import os
import subprocess
import sys
import tempfile


def main():
    qcast = sys.argv[1]
    try:
        import numpy as np
        import onnx
        from onnx import TensorProto, helper
        import torch
        import torch.nn as nn
    except ImportError:
        print("skip: torch/numpy/onnx absent")
        return 77
    torch.manual_seed(20261207)

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(8, 8)
            self.b = nn.Linear(8, 4)

        def forward(self, x):
            h = self.a(x)
            if bool(h.sum() > 0):  # then: [N, 8] -> [N, 4]; else: [N, 8] kept, doubled
                y = torch.relu(self.b(h))
            else:
                y = h * 2.0
            return y.sum(dim=1, keepdim=True) + x[:, :1]

    class Loopy(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = nn.Linear(8, 8)

        def forward(self, x):
            h = x
            rows = x[0:0]
            for _ in range(x.shape[0]):  # trip count from the input's shape; `rows` grows by one row a step
                h = torch.tanh(self.cell(h))
                rows = torch.cat([rows, h[0:1]], 0)
            return rows + h.mean()

    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        def run(model_path, x):
            xin = os.path.join(tmp, "x.npy")
            out = os.path.join(tmp, "y.npy")
            np.save(xin, x)
            r = subprocess.run([qcast, "infer", model_path, xin, "-o", out, "-q"], capture_output=True, text=True, timeout=60)
            return r, (np.load(out) if r.returncode == 0 else None)

        for name, mod, inputs in [
            ("branchy", Branchy(), [np.full((3, 8), 2.0, np.float32), np.full((3, 8), -2.0, np.float32)]),
            ("loopy", Loopy(), [np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32) for n in (1, 3, 6)]),
        ]:
            scripted = torch.jit.script(mod.eval())
            path = os.path.join(tmp, name + ".onnx")
            torch.onnx.export(scripted, (torch.from_numpy(inputs[0]),), path, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=13)
            ops = set()

            def walk(g):
                for n in g.node:
                    ops.add(n.op_type)
                    for a in n.attribute:
                        if a.type == onnx.AttributeProto.GRAPH:
                            walk(a.g)
            walk(onnx.load(path).graph)
            want_op = "If" if name == "branchy" else "Loop"
            if want_op not in ops:
                print(f"FAIL {name}: the export has no {want_op} (ops: {sorted(ops)}); the test would not test control flow")
                failures += 1
                continue
            for x in inputs:
                with torch.no_grad():
                    ref = scripted(torch.from_numpy(x)).numpy()
                r, y = run(path, x)
                if r.returncode != 0:
                    print(f"FAIL {name} {x.shape}: qcast exit {r.returncode}: {r.stderr.strip()}")
                    failures += 1
                    continue
                err = float(np.max(np.abs(y - ref))) if y.shape == ref.shape else float("inf")
                ok = err <= 1e-4 * float(np.max(np.abs(ref))) + 1e-5
                print(f"{'ok  ' if ok else 'FAIL'} {name} input {x.shape} -> {y.shape} (PyTorch {ref.shape}), max |diff| {err:.3g}")
                failures += 0 if ok else 1
                # A recipe reaches the layers inside the bodies: with int2 weights (one scale per channel) the output must move, in
                # either branch (branchy's then_branch holds its second Linear; loopy's body its only one).
                r2 = subprocess.run([qcast, "infer", path, os.path.join(tmp, "x.npy"), "-o", os.path.join(tmp, "q.npy"), "-q",
                                     "--weights", "int2@fp32/ch0"], capture_output=True, text=True, timeout=60)
                moved = r2.returncode == 0 and float(np.max(np.abs(np.load(os.path.join(tmp, "q.npy")) - y))) > 1e-3
                print(f"{'ok  ' if moved else 'FAIL'} {name} input {x.shape}: int2 weights change the output (exit {r2.returncode})")
                failures += 0 if moved else 1

        # Hostile bodies: exit 2 with a message, quickly.
        def save(graph, name):
            m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
            path = os.path.join(tmp, name + ".onnx")
            onnx.save(m, path)
            return path

        x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
        y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        body = helper.make_graph(
            [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])], "body",
            [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
            [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []), helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
        endless = save(helper.make_graph(
            [helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
             helper.make_node("Loop", ["", "t", "x"], ["y"], body=body)], "endless", [x_info], [y_info]), "endless")

        def nested(depth):
            out = helper.make_tensor_value_info(f"o{depth}", TensorProto.FLOAT, None)
            if depth == 0:
                return helper.make_graph([helper.make_node("Neg", ["x"], ["o0"])], "leaf", [], [out])
            leaf = helper.make_graph([helper.make_node("Neg", ["x"], [f"e{depth}"])], "leaf", [],
                                     [helper.make_tensor_value_info(f"e{depth}", TensorProto.FLOAT, None)])
            return helper.make_graph([helper.make_node("If", ["c"], [f"o{depth}"], then_branch=nested(depth - 1), else_branch=leaf)],
                                     f"level{depth}", [], [out])
        # Scan (opset 9+) against numpy: a running sum over axis 1 in reverse, the step scaled by an initializer
        # of the enclosing graph, the outputs stacked on a new last axis from the end.
        w = np.array([0.5, -1.0, 2.0], np.float32)
        scan_body = helper.make_graph(
            [helper.make_node("Mul", ["e", "w"], ["ew"]), helper.make_node("Add", ["s", "ew"], ["s_out"]),
             helper.make_node("Add", ["s_out", "s_out"], ["y_t"])], "scan_body",
            [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 3]), helper.make_tensor_value_info("e", TensorProto.FLOAT, [2, 3])],
            [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [2, 3]), helper.make_tensor_value_info("y_t", TensorProto.FLOAT, [2, 3])])
        scan_model = save(helper.make_graph(
            [helper.make_node("Constant", [], ["s0"], value=helper.make_tensor("s0", TensorProto.FLOAT, [2, 3], [0.0] * 6)),
             helper.make_node("Scan", ["s0", "x"], ["s_final", "y"], body=scan_body, num_scan_inputs=1, scan_input_axes=[1],
                              scan_input_directions=[1], scan_output_axes=[2], scan_output_directions=[1])],
            "scan", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 5])],
            initializer=[helper.make_tensor("w", TensorProto.FLOAT, [3], w.tolist())]), "scan")
        xs = np.random.default_rng(3).standard_normal((2, 5, 3)).astype(np.float32)
        want = np.zeros((2, 3, 5), np.float32)
        acc = np.zeros((2, 3), np.float32)
        for t in range(5):
            acc = acc + xs[:, 4 - t, :] * w
            want[:, :, 4 - t] = 2 * acc
        r, got = run(scan_model, xs)
        ok = r.returncode == 0 and got is not None and got.shape == want.shape and np.abs(got - want).max() <= 1e-5 * np.abs(want).max() + 1e-6
        print(f"{'ok  ' if ok else 'FAIL'} Scan (reverse in, axis 2 out, reverse out) against numpy: exit {r.returncode} {r.stderr.strip()[:200]}")
        failures += 0 if ok else 1

        deep = nested(20)
        deep_model = save(helper.make_graph(
            [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0), helper.make_node("Constant", [], ["z"], value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0])),
             helper.make_node("Greater", ["s", "z"], ["c"])] + list(deep.node), "deep", [x_info],
            [helper.make_tensor_value_info("o20", TensorProto.FLOAT, None)]), "deep")
        for name, path, words in [("endless Loop", endless, "iterations"), ("If nested 20 deep", deep_model, "nested")]:
            r, _ = run(path, np.ones((1, 4), np.float32))
            ok = r.returncode == 2 and words in r.stderr
            print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {r.returncode}: {r.stderr.strip()[:200]}")
            failures += 0 if ok else 1

        # infer feeds one .npy per graph input: a wrong count is exit 2 naming both counts.
        xin = os.path.join(tmp, "x.npy")
        r = subprocess.run([qcast, "infer", endless, xin, xin, "-q"], capture_output=True, text=True, timeout=60)
        ok = r.returncode == 2 and "takes 1 inputs, got 2" in r.stderr
        print(f"{'ok  ' if ok else 'FAIL'} two inputs for a one-input model: exit {r.returncode}: {r.stderr.strip()[:200]}")
        failures += 0 if ok else 1

    print("FAIL" if failures else "PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
