#!/usr/bin/env python3
"""The rceil scale rule (mxfp8_rceil, mxfp4_rceil, ...) against the RCEIL recipe of torchao and cuBLAS.

Usage: test_rceil_scale.py QCAST_BINARY [SHARED_DIR]  (exit 77 = skipped)

torchao's `_to_mx_rceil` (torchao/prototype/mx_formats, after NVIDIA's cuBLAS "1D block quantization" and
the `cvt.rp.satfinite.ue8m0x2.f32` instruction), written out here with numpy:
  descale  = float32(amax) / float32(max_pos)                 (a float32 division)
  exponent = clamp(ceil(log2(descale)), -127, 127) + 127      (biased E8M0; amax 0 -> log2 = -inf -> 0)
  data     = clamp(x * (1.0 if exponent == 0 else 2^(127 - exponent)), -max_pos, max_pos)
  value    = element(data) * 2^(exponent - 127)
ceil(log2(.)) is taken exactly here (frexp), as the instruction does; torch.log2 in float32 would round a
quotient within an ulp above a large power of two down onto it. The element rounding (round to nearest
even on the element grid) is qcast's elementwise cast, which tests/format/conformance_test.cpp checks
against the microxcaling reference; this test checks the scale rule and its special cases.
"""
import os
import subprocess
import sys
import tempfile

FORMATS = {  # name: (element, max_pos)
    "mxfp8_rceil": ("e4m3", 448.0),
    "mxfp8_e5m2_rceil": ("e5m2", 57344.0),
    "mxfp6_e3m2_rceil": ("e3m2", 28.0),
    "mxfp6_e2m3_rceil": ("e2m3", 7.5),
    "mxfp4_rceil": ("e2m1", 6.0),
}


def main():
    qcast = sys.argv[1]
    try:
        import numpy as np
    except ImportError:
        print("skip: numpy absent")
        return 77
    rng = np.random.default_rng(11)
    blocks = []
    # Ordinary blocks over many binades, blocks whose amax / max_pos is exactly a power of two or one ulp
    # beside it, all-zero blocks, and tiny blocks whose scale is 2^-127 (code 0: elements left unscaled).
    for k in range(400):
        b = (rng.standard_normal(32) * 2.0 ** rng.integers(-60, 60)).astype(np.float32)
        blocks.append(b)
    for name, (elem, max_pos) in FORMATS.items():
        for e in (-100, -3, 0, 5, 90):
            for ulps in (-1, 0, 1):
                b = (rng.standard_normal(32) * 2.0 ** e).astype(np.float32)
                a = np.float32(max_pos * 2.0 ** e)
                a = np.nextafter(a, np.float32(np.inf if ulps > 0 else -np.inf)) if ulps else a
                b = np.clip(b, -a, a)
                b[3] = -a
                blocks.append(b.astype(np.float32))
    blocks.append(np.zeros(32, np.float32))
    blocks.append((rng.standard_normal(32) * 2.0 ** -125).astype(np.float32))
    blocks.append((rng.standard_normal(32) * 2.0 ** -135).astype(np.float32))
    x = np.stack(blocks).astype(np.float32)

    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "x.npy")
        np.save(inp, x)
        failures = 0
        for name, (elem, max_pos) in FORMATS.items():
            amax = np.abs(x).max(axis=1).astype(np.float32)
            descale = amax / np.float32(max_pos)
            mant, ex = np.frexp(descale.astype(np.float64))  # descale = mant * 2^ex, mant in [0.5, 1)
            ceil_log2 = np.where(mant == 0.5, ex - 1, ex)
            ceil_log2 = np.where(descale == 0, -127, ceil_log2)
            e = np.clip(ceil_log2, -127, 127)
            biased = e + 127
            mult = np.where(biased == 0, 1.0, np.ldexp(1.0, -e)).astype(np.float32)
            data = np.clip(x * mult[:, None], -max_pos, max_pos).astype(np.float32)
            dpath, qpath, outp = (os.path.join(tmp, f"{name}.{s}.npy") for s in ("data", "q", "out"))
            np.save(dpath, data)
            subprocess.run([qcast, "cast", dpath, qpath, "--format", elem], check=True)
            want = (np.load(qpath).astype(np.float64) * np.ldexp(1.0, e)[:, None]).astype(np.float32)
            subprocess.run([qcast, "cast", inp, outp, "--format", name], check=True)
            got = np.load(outp)
            diff = np.nonzero(got.view(np.uint32) != want.view(np.uint32))
            if diff[0].size:
                r, c = diff[0][0], diff[1][0]
                print(f"FAIL {name}: {diff[0].size} values differ; first at block {r} element {c}: x={x[r, c]!r} "
                      f"amax={amax[r]!r} exponent={biased[r]} got={got[r, c]!r} want={want[r, c]!r}")
                failures += 1
            else:
                print(f"ok {name}: {x.size} values, {len(np.unique(biased))} distinct scale codes, "
                      f"{int((biased == 0).sum())} blocks at code 0")
            # The encoded E8M0 scale codes are the exponents above.
            enc = os.path.join(tmp, f"{name}.enc.safetensors")
            subprocess.run([qcast, "encode", inp, enc, "--format", name], check=True)
            raw = open(enc, "rb").read()
            import json
            n = int.from_bytes(raw[:8], "little")
            hdr = json.loads(raw[8:8 + n])
            key = next(k for k in hdr if k.endswith(".scales") or k == "scales")
            lo, hi = hdr[key]["data_offsets"]
            codes = np.frombuffer(raw[8 + n + lo:8 + n + hi], dtype=np.uint8)
            if not np.array_equal(codes, biased.astype(np.uint8)):
                print(f"FAIL {name}: scale codes differ at block {int(np.nonzero(codes != biased)[0][0])}")
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
