#!/usr/bin/env python3
"""qcast's numpy API against the qcast CLI (bit for bit) and the microxcaling reference vectors.

Usage: test_numpy.py QCAST_CLI SHARED_DIR   (CTest: python.test_numpy; pytest collects it too)
"""
import json
import os
import pickle
import sys
import tempfile
import threading

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _support  # noqa: E402
import qcast  # noqa: E402

RNG = np.random.default_rng(1234)
# 3 x 40 x 72: ragged last blocks of 32 and 16, room for /ch, tiles and an inner block axis.
X = (RNG.standard_normal((3, 40, 72)) * np.exp(RNG.uniform(-4, 4, (3, 40, 1)))).astype(np.float32)


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def test_cast_equals_cli_and_microxcaling_on_every_conformance_file():
    d = os.path.join(_support.shared(), "conformance", "microxcaling")
    if not os.path.isfile(os.path.join(d, "index.json")):
        raise _support.Skip(f"{d} absent")
    with open(os.path.join(d, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    inp = os.path.join(d, index["input"])
    x = np.load(inp)
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, info in index["files"].items():
            out = os.path.join(tmp, name)
            _support.run_cli("cast", inp, out, "--format", info["format"], "--round", info["round"])
            cli_y = np.load(out)
            y = qcast.cast(x, info["format"], round=info["round"])
            assert y.dtype == np.float32 and y.shape == x.shape
            assert np.array_equal(bits(y), bits(cli_y)), f"{name}: numpy cast differs from the CLI"
            ref = np.load(os.path.join(d, name)).astype(np.float32)
            same = (y == ref) | (np.isnan(y) & np.isnan(ref))
            assert same.all(), f"{name}: {np.count_nonzero(~same)} values differ from microxcaling"
            checked += 1
    assert checked == len(index["files"]) >= 22, checked


def test_every_named_format_cast_encode_decode_matches_cli():
    names = [r.name for r in qcast.formats()]
    assert len(names) >= 20 and "mxfp4" in names and "nvfp4" in names
    x2 = X.reshape(120, 72)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "x.npy")
        np.save(src, x2)
        for name in names:
            y = qcast.cast(x2, name)
            out = os.path.join(tmp, name + ".npy")
            _support.run_cli("cast", src, out, "--format", name)
            assert np.array_equal(bits(y), bits(np.load(out))), f"{name}: cast differs from the CLI"
            # encode -> decode == cast, and the packed file the CLI writes holds the same codes and scales.
            e = qcast.encode(x2, name)
            # Rows of 72 are not whole blocks of the k-quants or IQ4_NL: llama.cpp stores such rows as F16.
            stored = "fp16" if name in ("q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "mxfp4_ggml", "nvfp4_ggml") else name
            assert e.shape == x2.shape and e.format == qcast.Format(stored).name, (name, e.format)
            # Values equal (integer codes have no -0: decode gives +0 where cast keeps the sign of a zero).
            assert np.array_equal(qcast.decode(e), y, equal_nan=True), f"{name}: decode(encode(x)) != cast(x)"
            packed = os.path.join(tmp, name + ".safetensors")
            _support.run_cli("encode", src, packed, "--format", name)
            pf = qcast.load_packed(packed)
            ce = pf.quantized["tensor"]
            assert np.array_equal(ce.codes, e.codes) and np.array_equal(ce.scales, e.scales), name
            assert np.array_equal(ce.zeros, e.zeros) and ce.num_groups == e.num_groups, name
            assert np.float32(ce.tensor_scale) == np.float32(e.tensor_scale), name
            # A file written from Python decodes with the CLI to the same values.
            mine = os.path.join(tmp, name + ".py.safetensors")
            qcast.save_packed(mine, {"w": e}, plain={"ids": np.arange(5, dtype=np.int64)}, metadata={"k": "v"})
            dec = os.path.join(tmp, name + ".dec.safetensors")
            _support.run_cli("decode", mine, dec)
            back = qcast.load_packed(mine)
            assert back.metadata == {"k": "v"} and np.array_equal(back.plain["ids"], np.arange(5))
            assert np.array_equal(bits(qcast.decode(back.quantized["w"])), bits(qcast.decode(e))), name
            single = os.path.join(tmp, name + ".dec.npy")
            qcast.save_packed(mine, {"w": e})
            _support.run_cli("decode", mine, single)
            assert np.array_equal(bits(np.load(single)), bits(qcast.decode(e))), f"{name}: CLI decode of a Python file"


def test_options_match_cli_axis_round_seed_and_float16():
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "x.npy")
        np.save(src, X)
        cases = [("mxfp4", ["--axis", "1"], dict(axis=1)), ("mxfp4", ["--axis", "0"], dict(axis=-3)),
                 ("int4@fp16/g16/asym", ["--round", "stochastic", "--seed", "7"], dict(round="stochastic", seed=7)),
                 ("int8@fp32/ch1", [], {}), ("e4m3@e8m0/t8x8", [], {}), ("e4m3", ["--overflow", "inf"], dict(overflow="inf")),
                 ("nvfp4", ["--threads", "1"], dict(threads=1)), ("int4@fp16/g32/mse", ["--round", "away"], dict(round="away"))]
        for fmt, flags, kw in cases:
            out = os.path.join(tmp, "y.npy")
            _support.run_cli("cast", src, out, "--format", fmt, *flags)
            assert np.array_equal(bits(qcast.cast(X, fmt, **kw)), bits(np.load(out))), (fmt, flags)
            s = qcast.stats(X, fmt, **kw)
            cli = json.loads(_support.run_cli("stats", src, "--format", fmt, "--json", *flags))["results"][0]["total"]
            assert s.count == cli["count"] and np.isclose(s.mse, cli["mse"], rtol=1e-12, atol=0), (fmt, s, cli)
            assert np.isclose(s.frac_clipped, cli["frac_clipped"]) and np.isclose(s.frac_flushed, cli["frac_flushed"])
        # float16 input is widened as the CLI widens a float16 .npy; strided input equals its copy.
        h = X.astype(np.float16)
        np.save(src, h)
        out = os.path.join(tmp, "y.npy")
        _support.run_cli("cast", src, out, "--format", "mxfp6_e2m3")
        assert np.array_equal(bits(qcast.cast(h, "mxfp6_e2m3")), bits(np.load(out)))
    t = X.transpose(2, 0, 1)[::2]
    assert not t.flags.c_contiguous
    assert np.array_equal(bits(qcast.cast(t, "mxfp4", axis=1)), bits(qcast.cast(np.ascontiguousarray(t), "mxfp4", axis=1)))
    # threads do not change results; concurrent calls from Python threads (GIL released) neither.
    want = qcast.cast(X, "nvfp4", threads=1)
    got = [None] * 4

    def work(i):
        got[i] = qcast.cast(X, "nvfp4", threads=2)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t_ in ts:
        t_.start()
    for t_ in ts:
        t_.join()
    assert all(np.array_equal(bits(g), bits(want)) for g in got)


def test_format_value_semantics():
    a, b = qcast.Format("mxfp4"), qcast.Format("E2M1@E8M0/B32/FLOOR")
    assert a == b and hash(a) == hash(b) and a.name == "mxfp4" and str(a) == "mxfp4"
    assert repr(a) == "qcast.Format('mxfp4')" and a.expanded == "e2m1@e8m0/b32/floor"
    assert a != qcast.Format("mxfp6_e2m3") and a != "mxfp4" and len({a, b, qcast.Format.parse("mxfp4")}) == 1
    assert a.bits_per_element == 4.25 and a.element == "e2m1" and a.element_bits == 4 and a.max_value == 6.0
    assert a.scaling == "block" and a.block_size == 32 and a.scale_element == "e8m0" and a.scale_rule == "floor"
    assert not a.has_nan and a.represents_nan and a.axis is None
    assert qcast.Format("int8@fp32/ch0").axis == 0 and qcast.Format("int8").scaling == "none"
    assert not qcast.Format("int8").represents_nan and qcast.Format("nvfp4").tensor_scale
    assert pickle.loads(pickle.dumps(a)) == a
    for row in qcast.formats():
        f = row.format
        assert f == qcast.Format(row.composition) and f.name == row.name, row.name
        for alias in row.aliases:
            assert qcast.Format(alias) == f, alias
    # A Format object and its name give the same cast.
    assert np.array_equal(bits(qcast.cast(X, a)), bits(qcast.cast(X, "mxfp4")))


def expect(exc, fn, *words):
    try:
        fn()
    except exc as e:
        msg = str(e)
        for w in words:
            assert w in msg, f"message {msg!r} lacks {w!r}"
        return msg
    raise AssertionError(f"{fn} did not raise {exc.__name__}")


def test_bad_input_raises_clear_exceptions():
    assert issubclass(qcast.Error, ValueError)
    expect(qcast.Error, lambda: qcast.Format("mxfp5"), "mxfp5", "mxfp4")  # did-you-mean
    expect(qcast.Error, lambda: qcast.cast(X, "int4@fp16/b0"))
    expect(qcast.Error, lambda: qcast.cast(X, "not_a_format"), "not_a_format")
    expect(TypeError, lambda: qcast.cast(X.astype(np.float64), "mxfp4"), "float64")
    expect(TypeError, lambda: qcast.cast(X.astype(np.int32), "mxfp4"), "int32")
    expect(TypeError, lambda: qcast.cast([1.0, 2.0], "mxfp4"), "list")
    expect(TypeError, lambda: qcast.cast(X, 4))
    expect(qcast.Error, lambda: qcast.cast(X, "mxfp4", axis=3), "axis")
    expect(qcast.Error, lambda: qcast.cast(X, "mxfp4", axis=-4), "axis")
    expect(qcast.Error, lambda: qcast.cast(X, "int8@fp32/ch5"), "axis")
    expect(qcast.Error, lambda: qcast.cast(X, "mxfp4", round="sideways"), "sideways")
    expect(qcast.Error, lambda: qcast.cast(X, "mxfp4", overflow="wrap"), "wrap")
    expect(qcast.Error, lambda: qcast.cast(X, "mxfp4", threads=0), "threads")
    nan = X.copy()
    nan[1, 2, 3] = np.nan
    for fmt in ("int8", "e2m1", "e3m2", "int4"):  # no NaN code in the element and no scale
        expect(qcast.Error, lambda: qcast.cast(nan, fmt), "NaN", fmt)
    # Formats that represent NaN (a NaN scale or element code) carry it to its group as the CLI does.
    y = qcast.cast(nan, "mxfp4")
    assert np.isnan(y[1, 2, 0:32]).all() and not np.isnan(y[1, 2, 32:]).any() and not np.isnan(y[0]).any()
    assert np.isnan(qcast.cast(nan, "e4m3")[1, 2, 3])
    qcast.cast(nan, "int8", nan="propagate")  # opt-in: no exception
    expect(qcast.Error, lambda: qcast.cast(nan, "int8", nan="maybe"), "maybe")
    # Degenerate shapes: no crash, either a result or qcast.Error.
    for arr in (np.zeros((0, 32), np.float32), np.zeros((4, 0), np.float32), np.array(1.5, dtype=np.float32)):
        for fmt in ("mxfp4", "int8@fp32/ch0", "e4m3@e8m0/t8x8", "nvfp4", "fp8"):
            try:
                r = qcast.cast(arr, fmt)
                assert r.shape == arr.shape
                e = qcast.encode(arr, fmt)
                assert qcast.decode(e).shape == arr.shape
            except qcast.Error:
                pass
    # Corrupt encoded objects and files are refused, not read out of bounds.
    e = qcast.encode(X, "mxfp4")
    bad = qcast.Encoded(e.format, e.shape, e.axis, e.codes[:-1], e.scales, num_groups=e.num_groups)
    expect(qcast.Error, lambda: qcast.decode(bad))
    bad = qcast.Encoded(e.format, e.shape, e.axis, e.codes, e.scales[:3], num_groups=e.num_groups)
    expect(qcast.Error, lambda: qcast.decode(bad))
    bad = qcast.Encoded(e.format, (3, 40, 72, 1000000), e.axis, e.codes, e.scales, num_groups=e.num_groups)
    expect(qcast.Error, lambda: qcast.decode(bad))
    expect(qcast.Error, lambda: qcast.Encoded("mxfp9", (1,), -1, b"", b""), "mxfp9")
    expect(TypeError, lambda: qcast.Encoded("mxfp4", (32,), 0, np.zeros(16, np.int32), b""))
    with tempfile.TemporaryDirectory() as tmp:
        expect(qcast.Error, lambda: qcast.load_packed(os.path.join(tmp, "missing.safetensors")), "missing.safetensors")
        junk = os.path.join(tmp, "junk.safetensors")
        with open(junk, "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
        expect(qcast.Error, lambda: qcast.load_packed(junk), "junk.safetensors")
        expect(TypeError, lambda: qcast.save_packed(os.path.join(tmp, "o.safetensors"), {"w": X}), "Encoded")
        assert not os.path.exists(os.path.join(tmp, "o.safetensors"))


if __name__ == "__main__":
    sys.exit(_support.main(dict(globals())))
