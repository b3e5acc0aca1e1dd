#!/usr/bin/env python3
"""qcast.lpt: each of a Linear layer's three GEMMs quantizes its two operands along its own inner dimension
(checked against products written out here with qcast.cast and numpy), the Hadamard transform cancels
exactly, AdaHOP classifies planted outlier patterns and extracts planted outlier channels, and its error on
them is below IHT's and the plain cast's.

Usage: test_lpt.py QCAST_CLI SHARED_DIR   (exit 77 when torch is absent)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _support  # noqa: E402
import qcast  # noqa: E402

try:
    import torch

    from qcast import lpt
except ImportError as e:  # pragma: no cover
    print(f"skip: {e}")
    sys.exit(77)

torch.manual_seed(0)


def cast(a, fmt, axis):
    return qcast.cast(np.ascontiguousarray(a, dtype=np.float32), fmt, axis=axis)


def test_full_precision_equals_torch_linear():
    x = torch.randn(3, 5, 40, requires_grad=True)
    w = torch.randn(24, 40, requires_grad=True)
    b = torch.randn(24, requires_grad=True)
    for transform in ("none", "hadamard"):
        cfg = lpt.LptConfig(transform=transform)
        y = lpt.lpt_linear(x, w, b, cfg)
        g = torch.randn_like(y)
        gx, gw, gb = torch.autograd.grad(y, (x, w, b), g)
        ry = torch.nn.functional.linear(x, w, b)
        rx, rw, rb = torch.autograd.grad(ry, (x, w, b), g)
        tol = 0 if transform == "none" else 1e-4  # H H^T = I up to float rounding
        for a, r in ((y, ry), (gx, rx), (gw, rw), (gb, rb)):
            assert a.shape == r.shape
            assert float((a - r).abs().max()) <= tol * float(r.abs().max()), (transform, float((a - r).abs().max()))


def test_each_gemm_quantizes_along_its_inner_dimension():
    # Different formats per operand so that a swapped operand or axis shows.
    cfg = lpt.LptConfig(weight="mxfp4", act="mxfp6", grad="mxfp8_e5m2", weight_bp="mxint8", act_bp="mxfp8")
    T, K, N = 70, 96, 40  # T and K not multiples of 32: ragged last blocks along both axes
    x = (torch.randn(T, K) * torch.exp(torch.randn(1, K))).requires_grad_()
    w = (torch.randn(N, K) * 0.1).requires_grad_()
    y = lpt.lpt_linear(x, w, None, cfg)
    g = torch.randn(T, N) * torch.exp(torch.randn(T, 1))
    gx, gw = torch.autograd.grad(y, (x, w), g)
    X, W, G = x.detach().numpy(), w.detach().numpy(), g.numpy()
    want_y = cast(X, "mxfp6", 1) @ cast(W, "mxfp4", 1).T          # inner K: both along K
    want_gx = cast(G, "mxfp8_e5m2", 1) @ cast(W, "mxint8", 0)      # inner N: dY along N, W along N
    want_gw = cast(G, "mxfp8_e5m2", 0).T @ cast(X, "mxfp8", 0)     # inner T: dY along T, X along T
    for got, want in ((y, want_y), (gx, want_gx), (gw, want_gw)):
        got = got.detach().numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max(), np.abs(got - want).max()
    # and it is not the float product
    assert np.abs(y.detach().numpy() - X @ W.T).max() > 1e-3 * np.abs(X @ W.T).max()


def test_hadamard_is_orthonormal_and_applied_per_block():
    for n in (1, 2, 8, 32):
        h = lpt.hadamard(n)
        assert torch.allclose(h @ h.t(), torch.eye(n), atol=1e-6)
        assert torch.all(h.abs() == h[0, 0].abs())
    a = torch.randn(3, 64)
    t = lpt.block_hadamard(a, 32)
    assert torch.allclose(t[:, :32], a[:, :32] @ lpt.hadamard(32), atol=1e-6)
    assert torch.allclose(t[:, 32:], a[:, 32:] @ lpt.hadamard(32), atol=1e-6)
    # IHT with a format: both operands transformed then cast along the inner dimension, K padded to the block
    a, b = torch.randn(20, 40), torch.randn(12, 40)
    cfg = lpt.LptConfig.uniform("mxfp4", "hadamard")
    ap = torch.nn.functional.pad(a, (0, 24))
    bp = torch.nn.functional.pad(b, (0, 24))
    want = cast(lpt.block_hadamard(ap, 32).numpy(), "mxfp4", 1) @ cast(lpt.block_hadamard(bp, 32).numpy(), "mxfp4", 1).T
    got = lpt.qgemm(a, b, "mxfp4", "mxfp4", cfg).numpy()
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_patterns_of_planted_outliers():
    base = torch.randn(256, 128)
    col = base.clone()
    col[:, 7] *= 40
    row = base.clone()
    row[3, :] *= 40
    assert lpt.pattern(base, 8.0)[0] == "none"
    p, score = lpt.pattern(col, 8.0)
    assert p == "column" and int(score.argmax()) == 7
    assert lpt.pattern(row, 8.0)[0] == "row"


def test_adahop_extracts_planted_channels_and_beats_iht_there():
    torch.manual_seed(1)
    x = torch.randn(512, 256)
    x[:, [5, 77, 200]] *= 60  # activation channel outliers on the inner dimension of the forward GEMM
    w = torch.randn(64, 256)
    ref = x @ w.t()
    err = {}
    for transform in ("none", "hadamard", "adahop"):
        cfg = lpt.LptConfig.uniform("mxfp4", transform)
        stats = lpt.GemmStats()
        y = lpt.qgemm(x, w, "mxfp4", "mxfp4", cfg, stats)
        err[transform] = float((y - ref).norm() / ref.norm())
        if transform == "adahop":
            assert stats.strategy == {"IHT+OE": 1} and stats.extracted == 3, stats
            assert stats.patterns == {"column/none": 1}, stats
    assert err["adahop"] < 0.5 * err["hadamard"] < err["none"], err
    # Without outliers AdaHOP is IHT exactly.
    x = torch.randn(512, 256)
    a = lpt.qgemm(x, w, "mxfp4", "mxfp4", lpt.LptConfig.uniform("mxfp4", "adahop"))
    h = lpt.qgemm(x, w, "mxfp4", "mxfp4", lpt.LptConfig.uniform("mxfp4", "hadamard"))
    assert torch.equal(a, h)


def test_oe_budget_and_determinism():
    x = torch.randn(64, 128)
    x[:, :10] *= 100  # ten outlier channels, a budget of 128/32 = 4
    w = torch.randn(16, 128)
    cfg = lpt.LptConfig.uniform("mxfp4", "adahop")
    s1, s2 = lpt.GemmStats(), lpt.GemmStats()
    y1 = lpt.qgemm(x, w, "mxfp4", "mxfp4", cfg, s1)
    y2 = lpt.qgemm(x, w, "mxfp4", "mxfp4", cfg, s2)
    assert s1.extracted == 4 and torch.equal(y1, y2)


def test_swap_linears_and_training_step():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    names = lpt.swap_linears(model, lpt.LptConfig.uniform("mxfp8", "adahop"), skip=("2",))
    assert names == ["0"] and isinstance(model[0], lpt.LptLinear) and type(model[2]) is torch.nn.Linear
    x = torch.randn(48, 32)
    loss = model(x).square().mean()
    loss.backward()
    assert model[0].weight.grad is not None and model[0].bias.grad is not None
    s = lpt.strategy_summary(model)
    assert sum(s["fwd"]["strategy"].values()) == 1 and sum(s["wgrad"]["strategy"].values()) == 1
    assert "dgrad" in s and sum(s["dgrad"]["strategy"].values()) == 0  # the first layer's dX is not needed


def _train(seed, threads):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(48, 96), torch.nn.GELU(), torch.nn.Linear(96, 8))
    lpt.swap_linears(model, lpt.LptConfig.uniform("mxfp4", "adahop", threads=threads))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(4):
        x = torch.randn(64, 48, generator=gen)
        x[:, 3] *= 30  # an outlier channel, so that the OE path runs too
        loss = torch.nn.functional.cross_entropy(model(x), torch.randint(0, 8, (64,), generator=gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()], lpt.strategy_summary(model)


def test_training_is_deterministic_for_a_seed_and_any_qcast_thread_count():
    a, sa = _train(5, 1)
    b, sb = _train(5, 2)
    c, _ = _train(6, 1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert sa == sb and sa["fwd"]["strategy"].get("IHT+OE", 0) > 0, sa


def test_bad_config():
    for kw in ({"transform": "rotate"}, {"block": 24}, {"weight": "mxfp5"}, {"outlier_ratio": 0.5}):
        try:
            lpt.LptConfig(**kw)
        except qcast.Error:
            continue
        raise AssertionError(f"LptConfig({kw}) was accepted")


if __name__ == "__main__":
    sys.exit(_support.main(dict(globals())))
