#!/usr/bin/env python3
"""`qcast quantize MODEL.onnx --out q.onnx` (QDQ) runs in ONNX Runtime with qcast's own outputs.

Usage: qdq.py QCAST_BINARY ENV_DIR WORK_DIR SHARED_DIR   (exit 77 = skipped)
For each (model, weight format[, static activation format and observer]): quantize with rtn into a QDQ model, then
 - the model holds DequantizeLinear nodes over integer initializers of the expected type (INT8 / UINT8, or INT4
   when blocked scales raised the opset to 21), and no float copy of a quantized weight;
 - with static activations: one QuantizeLinear -> DequantizeLinear pair per layer input, with the expected code type;
 - ONNX Runtime 1.30 on q.onnx equals `qcast infer MODEL --weights F` (with activations: `--recipe` of the recipe
   quantize saved, calibrated ranges included; qcast's fake-quant eval of the same recipe)
   to max |ort - qcast| <= 1e-4 * max |qcast|;
 - `qcast infer q.onnx` (qcast's own DequantizeLinear) equals the same to 1e-5 * max |qcast|.
With static activations, every layer re-quantizes a float result that ONNX Runtime and qcast compute with different
(equally valid) summation orders, so a value within float rounding of a rounding boundary can take the neighbouring
code in one of them, and that flip travels on. There the comparison is in two parts:
 - exact semantics where no float noise comes first: the model cut after its first quantized layer (Clip ->
   QuantizeLinear -> DequantizeLinear of the real input, then the layer) gives the same output in ONNX Runtime
   and qcast to 1e-5 * max |qcast|;
 - the whole model: the same top-1 class for every input, and mean |ort - qcast| <= 1% of mean |qcast| (a wrong
   scale, zero point or clipping bound moves it far more; the measured values are printed).
"""
import json
import os
import subprocess
import sys

CASES = [  # (model, format, expected code type, expected DequantizeLinear granularity)
    ("lenet5-mnist", "int8@fp32/tensor", "INT8", "tensor"),
    ("lenet5-mnist", "int8@fp32/ch0", "INT8", "axis 0"),
    ("lenet5-mnist", "int8@fp16/ch0/asym", "UINT8", "axis 0"),
    ("lenet5-mnist", "int4@fp16/g16", "INT4", "blocks of 16"),
    ("lenet5-mnist", "mxint8", "INT8", "axis 0,blocks of 32"),  # a 25-input layer is one block per row = per channel
    ("resnet20-cifar10", "int4@fp32/ch0", "INT8", "axis 0"),
    ("resnet20-cifar10", "int4@fp16/g32/asym", "UINT4", "axis 0,blocks of 32"),  # the 27-input stem: one block per row
    # static (calibrated) activations: QuantizeLinear / DequantizeLinear in front of every layer
    ("lenet5-mnist", "int8@fp32/ch0", "INT8", "axis 0", ("int8", "minmax", "INT8")),
    ("lenet5-mnist", "int8@fp32/ch0", "INT8", "axis 0", ("int8@fp32/tensor/asym", "percentile:99.9", "UINT8")),
    ("resnet20-cifar10", "int8@fp32/ch0", "INT8", "axis 0", ("int8", "percentile:99.99", "INT8")),
    ("resnet20-cifar10", "int8@fp32/ch0", "INT8", "axis 0", ("int4", "minmax", "INT8")),  # 4-bit codes in INT8 + Clip at opset 13
]
TYPES = {2: "UINT8", 3: "INT8", 21: "UINT4", 22: "INT4"}


def main():
    qcast, env, work, shared = (os.path.abspath(p) for p in sys.argv[1:5])
    try:
        import numpy as np
        import onnx
    except ImportError:
        print("skip: numpy / python3-onnx absent")
        return 77
    if not os.path.isdir(os.path.join(env, "node_modules", "onnxruntime-node")):
        print(f"skip: ONNX Runtime is not installed in {env} (ort.install skipped)")
        return 77
    models = os.path.join(shared, "models")
    mnist = os.path.join(shared, "data", "mnist")
    os.makedirs(work, exist_ok=True)
    failures = 0
    jobs, rows = [], []
    labels = os.path.join(work, "labels.npy")
    np.save(labels, np.zeros(64, np.int64))
    for k, (name, fmt, want_type, want_gran, *acts) in enumerate(CASES):
        src = os.path.join(models, name + ".onnx")
        x = os.path.join(models, name + ".ref-input.npy")
        q = os.path.join(work, f"q{k}.onnx")
        ref = os.path.join(work, f"ref{k}.npy")
        saved = os.path.join(work, f"recipe{k}.yaml")
        # rtn reads one sample; static activations calibrate on 64 (MNIST images other than the test input, or the input)
        calib = "mnist:" + mnist if name.startswith("lenet") else f"npy:{x},{labels}"
        extra = ["--calib-samples", "1"]
        if acts:
            extra = ["--acts", acts[0][0], "--act-observer", acts[0][1], "--calib-samples", "64", "--calib-offset", "1000"
                     if name.startswith("lenet") else "0", "--save-recipe", saved]
        r = subprocess.run([qcast, "quantize", src, "--weights", fmt, "--method", "rtn", "--calib", calib, "--out", q, "--quiet"]
                           + extra, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL {name} {fmt}: qcast quantize exited {r.returncode}: {r.stderr.strip()}")
            failures += 1
            continue
        subprocess.run([qcast, "infer", src, x, "-o", ref] + (["--recipe", saved] if acts else ["--weights", fmt]),
                       check=True, capture_output=True)
        subprocess.run([qcast, "infer", q, x, "-o", os.path.join(work, f"self{k}.npy")], check=True, capture_output=True)
        m = onnx.load(q)
        inits = {t.name: t for t in m.graph.initializer}
        dqs = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]  # the weights'
        qs = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
        if acts:
            layers = sum(1 for n in m.graph.node if n.op_type in ("Conv", "Gemm", "MatMul"))
            act_types = {TYPES.get(inits[n.input[2]].data_type, "?") for n in qs}
            fed = {n.input[0] for n in m.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")}
            act_dq = {n.output[0] for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in inits}
            if len(qs) != layers or act_types != {acts[0][2]} or not fed <= act_dq:
                print(f"FAIL {name} {fmt} acts {acts[0]}: {len(qs)} QuantizeLinear for {layers} layers, zero point types "
                      f"{act_types} (expected {acts[0][2]}), layer inputs not dequantized: {sorted(fed - act_dq)}")
                failures += 1
        elif qs:
            print(f"FAIL {name} {fmt}: QuantizeLinear nodes without activation quantization")
            failures += 1
        types = {TYPES.get(inits[n.input[0]].data_type, str(inits[n.input[0]].data_type)) for n in dqs}
        grans = set()
        for n in dqs:
            a = {at.name: at.i for at in n.attribute}
            s = inits[n.input[1]]
            grans.add("tensor" if len(s.dims) == 0 else f"blocks of {a['block_size']}" if a.get("block_size", 0) else f"axis {a.get('axis', 1)}")
        weights_left = [n.input[1] for n in m.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n.input[1] in inits]
        if not dqs or types != {want_type} or grans != set(want_gran.split(",")) or weights_left:
            print(f"FAIL {name} {fmt}: {len(dqs)} DequantizeLinear, code types {types}, granularity {grans} "
                  f"(expected {want_type}, {want_gran}); float weights left: {weights_left}")
            failures += 1
        jobs.append({"model": q, "inputs": [x], "out": os.path.join(work, f"ort{k}")})
        if acts:  # the model cut after its first quantized layer, for the exact comparison
            first = next(n for n in m.graph.node if n.op_type in ("Conv", "Gemm", "MatMul"))
            cut = onnx.load(q)
            del cut.graph.output[:]
            cut.graph.output.append(onnx.helper.make_tensor_value_info(first.output[0], onnx.TensorProto.FLOAT, None))
            onnx.save(cut, os.path.join(work, f"first{k}.onnx"))
            subprocess.run([qcast, "infer", os.path.join(work, f"first{k}.onnx"), x, "-o", os.path.join(work, f"first_qcast{k}.npy")],
                           check=True, capture_output=True)
            jobs.append({"model": os.path.join(work, f"first{k}.onnx"), "inputs": [x], "out": os.path.join(work, f"first_ort{k}")})
        label = fmt + (f" A:{acts[0][0]}/{acts[0][1]}" if acts else "")
        rows.append((k, name, label, len(dqs), want_type, want_gran, m.opset_import[0].version, os.path.getsize(q), os.path.getsize(src),
                     bool(acts)))
    with open(os.path.join(work, "jobs.json"), "w") as f:
        json.dump(jobs, f)
    r = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_run.mjs"), os.path.join(work, "jobs.json")],
                       cwd=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        print("FAIL: ONNX Runtime did not run the QDQ models")
        return 1
    print(f"{'model':17s} {'weights':44s} {'DQ':>3s} {'codes':>6s} {'scales':>13s} {'opset':>5s} {'bytes':>15s} {'ort vs qcast':>12s} {'qcast q.onnx':>12s}")
    for k, name, fmt, ndq, ty, gran, opset, qsize, size, with_acts in rows:
        ref = np.load(os.path.join(work, f"ref{k}.npy")).astype(np.float64)
        ort = np.load(os.path.join(work, f"ort{k}", "output_0.npy")).astype(np.float64)
        own = np.load(os.path.join(work, f"self{k}.npy")).astype(np.float64)
        scale = float(np.max(np.abs(ref)))
        e_ort = float(np.max(np.abs(ort - ref))) / scale
        e_own = float(np.max(np.abs(own - ref))) / scale
        print(f"{name:17s} {fmt:44s} {ndq:3d} {ty:>6s} {gran:>13s} {opset:5d} {qsize:7d}/{size:7d} {e_ort:12.2e} {e_own:12.2e}")
        if with_acts:
            a = np.load(os.path.join(work, f"first_qcast{k}.npy")).astype(np.float64)
            b = np.load(os.path.join(work, f"first_ort{k}", "output_0.npy")).astype(np.float64)
            e_first = float(np.max(np.abs(a - b))) / float(np.max(np.abs(a)))
            mean_rel = float(np.mean(np.abs(ort - ref))) / float(np.mean(np.abs(ref)))
            top1 = float(np.mean(np.argmax(ort, 1) == np.argmax(ref, 1)))
            print(f"{'':17s} static activations: first layer ort vs qcast {e_first:.2e} of max; whole model mean |diff| "
                  f"{mean_rel:.2e} of mean |out|, top-1 agreement {top1:.4f}")
            if not (e_first <= 1e-5) or not (mean_rel <= 0.01) or top1 != 1.0:
                print(f"FAIL {name} {fmt}: ONNX Runtime differs from qcast beyond code flips at rounding boundaries")
                failures += 1
        elif not (e_ort <= 1e-4):
            print(f"FAIL {name} {fmt}: ONNX Runtime differs from qcast's fake-quant eval by {e_ort:.3g} of max |out|")
            failures += 1
        if not (e_own <= 1e-5):
            print(f"FAIL {name} {fmt}: qcast on q.onnx differs from its fake-quant eval by {e_own:.3g} of max |out|")
            failures += 1
    print(f"{len(CASES) - failures} passed, {failures} failed" if failures <= len(CASES) else f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
