#!/usr/bin/env python3
"""bf16 / fp16 casts of `qcast cast` vs PyTorch's own conversions on 2^24 random float32 bit patterns.

Usage: test_half_casts_torch.py QCAST_BINARY [SHARED_DIR]  (exit 77 = skipped; needs no shared material)
PyTorch (c10::BFloat16 / at::Half, round-to-nearest-even, subnormals kept, overflow to inf) is an
implementation independent of qcast's. The inputs are uniformly random bit patterns, so about 1/256 of
them are float32 subnormals and 1/256 NaN/Inf, plus the hand-picked edge cases below.
  * `--overflow inf`: qcast must equal torch bit for bit (NaN = any NaN; +0 and -0 must match too).
  * default (saturate): equal wherever torch's result is finite; where torch overflows a finite input to
    +-inf, qcast gives +-max normal (OCP MX convention, docs/formats.md); NaN stays NaN, inf stays inf.
"""
import os
import subprocess
import sys
import tempfile


def main():
    qcast = sys.argv[1]
    try:
        import numpy as np
        import torch
    except ImportError:
        print("skip: torch/numpy absent")
        return 77

    rng = np.random.default_rng(20261125)
    bits = rng.integers(0, 2**32, size=2**24, dtype=np.uint64).astype(np.uint32)
    edge = np.array([0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007fffff, 0x00800000,
                     0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001,
                     0x3f808000, 0x3f818000, 0x3f80c000, 0x3f807fff,  # bf16 ties to even, odd, above, below
                     0x477fe000, 0x477ff000, 0x477fefff,  # fp16: 65504 + half ulp (tie -> inf), below
                     0x33800000, 0x33800001, 0x33000000, 0x387fc000], dtype=np.uint32)
    bits[:edge.size] = edge
    x = bits.view(np.float32)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "x.npy")
        np.save(src, x)
        for fmt, tdtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
            ref = torch.from_numpy(x.copy()).to(tdtype).to(torch.float32).numpy()
            maxv = float(torch.finfo(tdtype).max)
            for overflow in ("inf", "saturate"):
                out = os.path.join(tmp, f"{fmt}-{overflow}.npy")
                cmd = [qcast, "cast", src, out, "--format", fmt, "--threads", "2"]
                if overflow == "inf":
                    cmd += ["--overflow", "inf"]
                subprocess.run(cmd, check=True)
                got = np.load(out)
                want = ref.copy()
                if overflow == "saturate":
                    over = np.isinf(want) & np.isfinite(x)
                    want[over] = np.copysign(maxv, x[over])
                nan_ok = np.isnan(got) & np.isnan(want)
                same = (got.view(np.uint32) == want.view(np.uint32)) | nan_ok
                bad = np.flatnonzero(~same)
                print(f"{fmt} overflow={overflow}: {x.size} values, {bad.size} differ "
                      f"({np.count_nonzero((bits & 0x7f800000) == 0)} float32 subnormals/zeros, "
                      f"{np.count_nonzero(np.isnan(x))} NaN)")
                for i in bad[:10]:
                    print(f"  x=0x{bits[i]:08x} ({x[i]!r}): qcast 0x{got.view(np.uint32)[i]:08x} "
                          f"torch 0x{want.view(np.uint32)[i]:08x}")
                failures += bad.size
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
