#!/usr/bin/env python3
"""qcast.torch: fake_quant's forward equals qcast.cast (and PyTorch's own bf16 / fp16 casts), its backward
is the straight-through estimator (identity / clipped, the clipped mask checked against the OCP MX scale
computed here independently), for every named format, float32 / float16 / bfloat16, strided tensors and
every block axis; QuantLinear / QuantConv2d / quantize_modules.

Usage: test_torch.py QCAST_CLI SHARED_DIR   (exit 77 when torch is absent)
"""
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _support  # noqa: E402
import qcast  # noqa: E402

try:
    import torch

    import qcast.torch as qt
except ImportError as e:  # pragma: no cover
    print(f"skip: {e}")
    sys.exit(77)

torch.manual_seed(0)
X = torch.randn(4, 24, 40) * torch.exp(torch.empty(4, 24, 1).uniform_(-3, 3))
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def tbits(t):
    t = t.contiguous()
    if t.dtype == torch.float32:
        return t.view(torch.int32)
    return t.view(torch.int16)


def expected(x, fmt, **kw):
    """The forward's definition: qcast.cast of x as float32, rounded back to x's dtype."""
    y = qcast.cast(x.detach().float().contiguous().numpy(), fmt, **kw)
    return torch.from_numpy(y).to(x.dtype)


def test_forward_equals_cast_every_format_and_dtype():
    n = 0
    for row in qcast.formats():
        for dt in DTYPES:
            x = X.to(dt)
            y = qt.fake_quant(x, row.name)
            assert y.dtype == dt and y.shape == x.shape
            assert torch.equal(tbits(y), tbits(expected(x, row.name))), (row.name, dt)
            n += 1
    assert n >= 60


def test_forward_matches_pytorch_casts():
    x = X.clamp(-6e4, 6e4)
    assert torch.equal(tbits(qt.fake_quant(x, "bf16")), tbits(x.bfloat16().float()))
    assert torch.equal(tbits(qt.fake_quant(x, "fp16")), tbits(x.half().float()))
    # bf16 tensors through bf16: unchanged.
    xb = x.bfloat16()
    assert torch.equal(tbits(qt.fake_quant(xb, "bf16")), tbits(xb))


def test_strided_tensors_and_every_block_axis():
    for fmt in ("mxfp4", "nvfp4", "int4@fp16/g8/asym", "mxint8"):
        for axis in (0, 1, 2, -1, -2, -3):
            for dt in DTYPES:
                x = X.to(dt)
                y = qt.fake_quant(x, fmt, axis=axis)
                # Reference: move the axis last, block along the last axis, move it back.
                moved = x.movedim(axis, -1).contiguous()
                ref = expected(moved, fmt).movedim(-1, axis)
                assert torch.equal(tbits(y), tbits(ref)), (fmt, axis, dt)
        # Non-contiguous inputs (a transpose and a strided slice) equal their contiguous copies.
        for view in (X.transpose(0, 2), X[:, ::3, 1:], X.permute(1, 2, 0)[::2]):
            assert not view.is_contiguous()
            assert torch.equal(tbits(qt.fake_quant(view, fmt, axis=1)), tbits(qt.fake_quant(view.contiguous(), fmt, axis=1)))


def mx_inside(x, emax, elem_max, block=32):
    """|x| <= the largest value of its MX block (OCP: scale 2^(floor(log2 amax) - emax)), last axis."""
    a = x.detach().float().numpy()
    n = a.shape[-1]
    pad = (-n) % block
    ap = np.pad(np.abs(a), [(0, 0)] * (a.ndim - 1) + [(0, pad)]).reshape(*a.shape[:-1], -1, block)
    amax = ap.max(axis=-1, keepdims=True)
    amax = np.where(amax > 0, amax, 2.0 ** -126)
    _, e = np.frexp(amax.astype(np.float64))  # amax = m * 2^e, m in [0.5, 1): floor(log2 amax) = e - 1
    bound = np.ldexp(np.float64(elem_max), (e - 1) - emax)
    bound = np.broadcast_to(bound, ap.shape).reshape(*a.shape[:-1], -1)[..., :n]
    return torch.from_numpy(np.abs(a) <= bound)


def test_backward_is_the_ste():
    g = torch.randn_like(X)
    for row in qcast.formats():
        for dt in DTYPES:
            x = X.to(dt).clone().requires_grad_(True)
            qt.fake_quant(x, row.name).backward(g.to(dt))
            assert x.grad.dtype == dt and torch.equal(x.grad, g.to(dt)), (row.name, dt)  # identity STE
            x = X.to(dt).clone().requires_grad_(True)
            qt.fake_quant(x, row.name, ste="clipped").backward(g.to(dt))
            mask = qt.clip_mask(X.to(dt), row.name)
            assert torch.equal(x.grad, torch.where(mask, g.to(dt), torch.zeros((), dtype=dt))), (row.name, dt)
    # The clipped mask against definitions computed here: elementwise bounds and the OCP MX block scale.
    big = X * 100
    assert torch.equal(qt.clip_mask(big, "int8"), (big >= -128) & (big <= 127))  # unscaled int8 keeps -128
    assert torch.equal(qt.clip_mask(big, "e4m3"), big.abs() <= 448)
    for fmt, emax, m in (("mxfp4", 2, 6.0), ("mxfp8", 8, 448.0), ("mxfp6_e2m3", 2, 7.5), ("mxfp8_e5m2", 15, 57344.0)):
        want = mx_inside(X, emax, m)
        got = qt.clip_mask(X, fmt)
        assert torch.equal(got, want), fmt
        assert (~want).any(), f"{fmt}: the data should make some elements clip"
    # Gradcheck (numerical vs autograd) where the quantizer is the identity (fp32), through dtype casts.
    x64 = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: qt.fake_quant(t.float(), "fp32").double() * 3, (x64,), eps=1e-3, atol=1e-3)
    # ... and on a quantized layer: d/dw sum(v * fake_quant(w)) == v (identity STE), also for the weight of a model.
    w = torch.randn(16, 64, requires_grad=True)
    v = torch.randn(16, 64)
    (qt.fake_quant(w, "mxfp4") * v).sum().backward()
    assert torch.equal(w.grad, v)


def test_modules_and_recipe():
    lin = torch.nn.Linear(64, 8)
    q = qt.QuantLinear.from_float(lin, "mxfp4", "mxfp8")
    x = torch.randn(5, 64, requires_grad=True)
    y = q(x)
    ref = torch.nn.functional.linear(expected(x, "mxfp8"), expected(lin.weight, "mxfp4", axis=1), lin.bias)
    assert torch.allclose(y, ref, rtol=0, atol=1e-6)
    y.sum().backward()
    assert x.grad is not None and q.weight.grad is not None and q.bias.grad is not None
    conv = torch.nn.Conv2d(32, 4, 3, padding=1)
    qc = qt.QuantConv2d.from_float(conv, "mxfp4", "mxfp8")
    xi = torch.randn(2, 32, 6, 6)
    # The weight in qcast's [out, in * kh * kw] view (as eval quantizes a Conv), the input along its channels.
    wq = expected(conv.weight.reshape(4, -1), "mxfp4", axis=1).reshape(conv.weight.shape)
    ref = torch.nn.functional.conv2d(expected(xi, "mxfp8", axis=1), wq, conv.bias, padding=1)
    assert torch.allclose(qc(xi), ref, rtol=0, atol=1e-5)
    # ... which is not the per-position blocking along the input channels alone (int4/g32: an fp32 scale
    # per block, so the two blockings give different values; mxfp4's power-of-two scales can coincide).
    qi = qt.QuantConv2d.from_float(conv, "int4/g32", None)
    wi = expected(conv.weight.reshape(4, -1), "int4/g32", axis=1).reshape(conv.weight.shape)
    assert torch.allclose(qi(xi), torch.nn.functional.conv2d(xi, wi, conv.bias, padding=1), rtol=0, atol=1e-5)
    assert not torch.equal(wi, expected(conv.weight, "int4/g32", axis=1))
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 10),
                                torch.nn.Linear(10, 10))
    done = qt.quantize_modules(model, {"weights": "mxfp4", "activations": "mxfp8", "layers": {"3": {"weights": "int8@fp32/ch0"}},
                                       "skip": ["4"]})
    n = lambda f: qcast.Format(f).name  # noqa: E731
    assert done == {"0": (n("mxfp4"), n("mxfp8")), "3": (n("int8@fp32/ch0"), n("mxfp8"))}, done
    assert isinstance(model[0], qt.QuantConv2d) and isinstance(model[3], qt.QuantLinear) and type(model[4]) is torch.nn.Linear
    model(torch.randn(2, 1, 28, 28)).sum().backward()
    recipe = os.path.join(_support.ROOT, "examples", "recipes", "w-mxfp4-a-mxfp8.json")
    m2 = torch.nn.Sequential(torch.nn.Linear(8, 8))
    with open(recipe, encoding="utf-8") as f:
        want = json.load(f)
    got = qt.quantize_modules(m2, recipe)
    assert got == {"0": (qcast.Format(want["weights"]).name, qcast.Format(want["activations"]).name)}, got


def test_quant_embedding():
    emb = torch.nn.Embedding(50, 64, padding_idx=0)
    q = qt.QuantEmbedding.from_float(emb, "mxfp4")
    idx = torch.tensor([[3, 7, 7], [0, 49, 1]])
    table = expected(emb.weight, "mxfp4", axis=1)  # rows quantized with blocks along the embedding dimension
    assert torch.equal(q(idx), table[idx])
    assert not torch.equal(q(idx), emb(idx))
    q(idx).sum().backward()  # STE: the looked-up rows get gradient (the padding row none)
    g = q.weight.grad
    assert torch.equal(g[7], 2 * torch.ones(64)) and torch.equal(g[3], torch.ones(64)) and not g[0].any() and not g[2].any()
    lq = qt.QuantEmbedding.from_float(emb, "int4@fp32/ch0", lsq=True)
    assert lq.weight_scale.shape == (50, 1)
    lq(idx).sum().backward()
    assert lq.weight_scale.grad is not None and lq.weight_scale.grad[3].abs().item() > 0
    model = torch.nn.Sequential(torch.nn.Embedding(20, 32), torch.nn.Linear(32, 4))
    done = qt.quantize_modules(model, {"weights": "mxfp8", "activations": "mxfp8"})
    n = lambda f: qcast.Format(f).name  # noqa: E731
    assert done == {"0": (n("mxfp8"), None), "1": (n("mxfp8"), n("mxfp8"))}, done
    assert isinstance(model[0], qt.QuantEmbedding)


def test_export_to_onnx_and_packed_safetensors():
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 5))
    recipe = {"weights": "int4@fp32/ch0", "activations": "mxfp8"}
    qt.quantize_modules(model, recipe)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    for _ in range(3):  # a few QAT steps, so that the batch norm statistics are not the defaults
        model.train()
        loss = model(torch.randn(16, 1, 8, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        want = model(x).numpy()
    os.environ["QCAST_CLI"] = _support.cli()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, packed = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "m.safetensors")
        report = qt.export(model, x, onnx_path, recipe, packed)
        assert len(report["layers"]) == 2, report
        np.save(os.path.join(tmp, "x.npy"), x.numpy())
        for args in ([packed], [onnx_path, "--weights", "int4@fp32/ch0", "--acts", "mxfp8"]):
            out = os.path.join(tmp, "y.npy")
            _support.run_cli("infer", args[0], os.path.join(tmp, "x.npy"), "-o", out, *args[1:])
            got = np.load(out)
            assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), (args, np.abs(got - want).max())
        # the exported model is the plain one: the float forward differs from the quantized one
        plain = qt.dequantized_copy(model)
        assert type(plain[0]) is torch.nn.Conv2d and type(model[0]) is qt.QuantConv2d
        with torch.no_grad():
            assert np.abs(plain(x).numpy() - want).max() > 1e-3
        lsq = torch.nn.Sequential(torch.nn.Linear(8, 4))
        qt.quantize_modules(lsq, {"weights": "int4@fp32/ch0"}, lsq=True)
        try:
            qt.export(lsq, torch.randn(2, 8), os.path.join(tmp, "l.onnx"))
        except qcast.Error:
            pass
        else:
            raise AssertionError("an LSQ model was exported as if its formats' own scales applied")


def test_quantized_modules_equal_qcast_infer_of_the_exported_model():
    """A model whose Conv2d / Linear layers are swapped by quantize_modules computes what `qcast infer
    --weights F` computes on the same model exported to ONNX: torch and the CLI quantize every weight in
    the same view (a model trained with qcast.torch is evaluated by qcast with the weights it was trained
    with)."""
    import copy
    import subprocess
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 6, 3), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(6 * 6 * 6, 5)).eval()
    x = torch.randn(4, 3, 8, 8)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, x_path = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "x.npy")
        torch.onnx.export(model, x, onnx_path, opset_version=13, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
        np.save(x_path, x.numpy())
        for fmt in ("mxfp4", "int4/g32", "int8@fp32/ch0"):
            q = copy.deepcopy(model)
            qt.quantize_modules(q, {"weights": fmt})
            with torch.no_grad():
                y_torch = q(x).numpy()
            y_path = os.path.join(tmp, "y.npy")
            subprocess.run([_support.cli(), "infer", onnx_path, x_path, "--weights", fmt, "--output", y_path, "--quiet"],
                           check=True, capture_output=True)
            y_cli = np.load(y_path)
            err = float(np.max(np.abs(y_cli - y_torch)))
            assert err <= 1e-5 * max(1.0, float(np.max(np.abs(y_cli)))), f"{fmt}: qcast infer vs torch max |diff| {err}"


def test_lsq_forward_and_gradients_follow_the_paper():
    """LSQ (Esser et al. 2020): y = s q(x/s); dy/dx = 1 inside [-Qn, Qp], 0 outside; dy/ds = q(v) - v
    inside, q(v) outside, times g, summed over the elements sharing a scale. Checked against a direct
    computation with qcast.cast of the element, for int4 (Qn 8, Qp 7) and ternary."""
    torch.manual_seed(1)
    for elem, lo, hi in (("int4", -8.0, 7.0), ("ternary", -1.0, 1.0)):
        x = (torch.randn(6, 40) * 3).requires_grad_(True)
        s = torch.full((6, 1), 0.5, requires_grad=True)
        g = 0.37
        y = qt.lsq_quant(x, s, elem, g)
        v = (x / s).detach()
        q = torch.from_numpy(qcast.cast(v.numpy().copy(), elem, axis=-1))
        assert torch.equal(y.detach(), q * s.detach()), elem
        w = torch.randn(6, 40)
        (y * w).sum().backward()
        inside = (v >= lo) & (v <= hi)
        assert inside.any() and (~inside).any(), "the test needs both cases"
        assert torch.equal(x.grad, w * inside.float()), elem
        want_s = (w * torch.where(inside, q - v, q) * g).sum(1, keepdim=True)
        assert torch.allclose(s.grad, want_s, rtol=1e-5, atol=1e-6), (elem, s.grad, want_s)
    raised = False
    try:
        qt.lsq_quant(torch.zeros(2, 2), torch.ones(2, 1), "int4/g32")
    except qcast.Error:
        raised = True
    assert raised, "a format with its own scale is refused"
    # Modules: per-output-channel learned scales, initialised as 2 mean|w| / sqrt(Qp); the weights the
    # forward uses lie on the element's grid times the scale, and the scale learns.
    conv = torch.nn.Conv2d(3, 4, 3)
    qc = qt.QuantConv2d.from_float(conv, "int4@fp32/ch0", None, lsq=True)
    init = 2 * conv.weight.detach().reshape(4, -1).abs().mean(1, keepdim=True) / 7 ** 0.5
    assert torch.allclose(qc.weight_scale.detach(), init)
    wq = qc.quantized_weight().detach().reshape(4, -1) / qc.weight_scale.detach()
    assert torch.equal(wq, torch.from_numpy(qcast.cast(wq.numpy().copy(), "int4", axis=-1)))
    qc(torch.randn(2, 3, 8, 8)).square().sum().backward()
    assert qc.weight_scale.grad is not None and qc.weight_scale.grad.abs().sum() > 0
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    qt.quantize_modules(model, {"weights": "int2@fp32/ch0"}, lsq=True)
    assert model[0].lsq and model[0].lsq_element == "int2" and model[0].weight_scale.shape == (4, 1)


def test_bad_input():
    def raises(exc, fn, word=""):
        try:
            fn()
        except exc as e:
            assert word in str(e), str(e)
            return
        raise AssertionError(f"no {exc.__name__}")

    raises(TypeError, lambda: qt.fake_quant(torch.arange(8), "mxfp4"), "int64")
    raises(TypeError, lambda: qt.fake_quant(X.double(), "mxfp4"), "float64")
    raises(qcast.Error, lambda: qt.fake_quant(X, "mxfp44"), "mxfp44")
    raises(qcast.Error, lambda: qt.fake_quant(X, "mxfp4", axis=7), "axis")
    nan = X.clone()
    nan[0, 0, 0] = float("nan")
    raises(qcast.Error, lambda: qt.fake_quant(nan, "int8"), "NaN")
    raises(ValueError, lambda: qt.fake_quant(X, "mxfp4", ste="banana"), "banana")
    with tempfile.TemporaryDirectory() as tmp:
        bad = os.path.join(tmp, "r.yaml")
        with open(bad, "w", encoding="utf-8") as f:
            f.write("weights: int4\n")  # an integer without a scale
        raises(qcast.Error, lambda: qt.quantize_modules(torch.nn.Linear(2, 2), bad), "int4")
        raises(qcast.Error, lambda: qt.quantize_modules(torch.nn.Sequential(torch.nn.Linear(2, 2)), {"weights": "mxfp5"}), "mxfp5")


if __name__ == "__main__":
    sys.exit(_support.main(dict(globals())))
