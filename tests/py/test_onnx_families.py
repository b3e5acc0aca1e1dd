#!/usr/bin/env python3
"""Small networks built from the layers of common model families, exported by PyTorch's ONNX exporter
with dynamic batch / image / sequence dimensions, run through `qcast infer` at two input shapes and
compared with PyTorch's own outputs (max |diff| <= 1e-4 * max |ref| + 1e-5).

Usage: test_onnx_families.py QCAST_BINARY [SHARED_DIR]  (exit 77 = skipped; needs no shared material)
Families (random weights; the layer patterns are what matters): MobileNetV2/V3 and EfficientNet (depthwise
and dilated conv, BatchNorm, Hardswish, Hardsigmoid squeeze-excite, SiLU, ReLU6), ShuffleNet (channel
shuffle), SqueezeNet / DenseNet (concat), VGG-style ceil-mode pooling, a U-Net decoder (ConvTranspose,
nearest and bilinear upsampling, skip concat, InstanceNorm), and a ViT / BERT encoder block (LayerNorm,
multi-head attention from reshapes of a dynamic sequence length, GELU via Erf, Softmax)."""
import os
import subprocess
import sys
import tempfile


def main():
    qcast = sys.argv[1]
    try:
        import numpy as np
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError:
        print("skip: torch/numpy absent")
        return 77
    torch.manual_seed(20261206)

    class MobileNetLike(nn.Module):
        def __init__(s):
            super().__init__()
            s.stem = nn.Conv2d(3, 16, 3, 2, 1)
            s.bn = nn.BatchNorm2d(16)
            s.dw = nn.Conv2d(16, 16, 3, 1, 2, dilation=2, groups=16)
            s.se1, s.se2 = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
            s.pw = nn.Conv2d(16, 24, 1)
            s.fire1, s.fire3 = nn.Conv2d(24, 8, 1), nn.Conv2d(24, 8, 3, padding=1)
            s.fc = nn.Linear(16, 10)

        def forward(s, x):
            x = F.hardswish(s.bn(s.stem(x)))
            y = s.dw(x)
            y = y * F.hardsigmoid(s.se2(F.relu(s.se1(F.adaptive_avg_pool2d(y, 1)))))
            y = F.relu6(s.pw(y)) + F.silu(s.pw(y))
            n, c, h, w = y.shape  # ShuffleNet channel shuffle through shapes of the dynamic input
            y = y.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
            y = F.max_pool2d(y, 3, 2, 1, ceil_mode=True)
            y = torch.cat([F.elu(s.fire1(y)), F.leaky_relu(s.fire3(y), 0.1)], 1)  # SqueezeNet fire
            y = F.avg_pool2d(y, 2, ceil_mode=True, count_include_pad=False)
            return torch.log_softmax(s.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)), dim=-1)

    class UNetDecoder(nn.Module):
        def __init__(s):
            super().__init__()
            s.down = nn.Conv2d(4, 8, 3, 2, 1)
            s.up = nn.ConvTranspose2d(8, 4, 2, 2)
            s.up3 = nn.ConvTranspose2d(8, 4, 3, 2, 1, output_padding=1, groups=2)
            s.norm = nn.InstanceNorm2d(12, affine=True)
            s.out = nn.Conv2d(12, 2, 1)

        def forward(s, x):
            d = F.prelu(s.down(x), torch.full((1,), 0.2))
            u = torch.cat([s.up(d), s.up3(d), x], 1)
            u = s.norm(u)
            b = F.interpolate(d, scale_factor=2.0, mode="bilinear", align_corners=False)
            nn_ = F.interpolate(d, scale_factor=2.0, mode="nearest")
            return torch.sigmoid(s.out(u)) + (b - nn_).mean(1, keepdim=True)

    class EncoderBlock(nn.Module):
        def __init__(s, d=32, heads=4):
            super().__init__()
            s.h = heads
            s.ln1, s.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            s.qkv, s.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            s.fc1, s.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(s, x):
            b, t, d = x.shape
            q, k, v = s.qkv(s.ln1(x)).reshape(b, t, 3, s.h, d // s.h).permute(2, 0, 3, 1, 4)
            a = torch.softmax(q @ k.transpose(-2, -1) / (d // s.h) ** 0.5, dim=-1)
            x = x + s.proj((a @ v).transpose(1, 2).reshape(b, t, d))
            x = x + s.fc2(F.gelu(s.fc1(s.ln2(x))))
            return x.mean(1)

    cases = [
        ("mobilenet", MobileNetLike(), {0: "n", 2: "h", 3: "w"}, [(2, 3, 32, 32), (1, 3, 40, 24)]),
        ("unet", UNetDecoder(), {0: "n", 2: "h", 3: "w"}, [(2, 4, 16, 16), (1, 4, 8, 12)]),
        ("encoder", EncoderBlock(), {0: "n", 1: "t"}, [(2, 10, 32), (3, 7, 32)]),
    ]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, axes, shapes in cases:
            model.eval()
            path = os.path.join(tmp, name + ".onnx")
            with torch.no_grad():
                torch.onnx.export(model, torch.randn(*shapes[0]), path, opset_version=13, input_names=["x"],
                                  output_names=["y"], dynamic_axes={"x": axes})
            for shape in shapes:
                x = torch.randn(*shape)
                with torch.no_grad():
                    ref = model(x).numpy()
                xin, yout = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
                np.save(xin, x.numpy())
                r = subprocess.run([qcast, "infer", path, xin, "-o", yout], capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"FAIL {name} {shape}: qcast infer exit {r.returncode}: {r.stderr.strip()}")
                    failures += 1
                    continue
                got = np.load(yout)
                diff = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
                tol = 1e-4 * float(np.abs(ref).max()) + 1e-5
                ok = diff <= tol
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} input {shape}: output {got.shape} (torch {ref.shape}), max |diff| {diff:.3g} (tol {tol:.3g})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
