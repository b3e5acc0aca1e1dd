#!/usr/bin/env python3
"""Writes the layer-shape JSON (docs/cost.md) of LeNet-5 and the CIFAR-10 ResNet-20 from their
well-known architectures (the same schema `qcast inspect --json` emits for an ONNX model).
Usage: python3 examples/models/make_layers.py  (rewrites the two .layers.json files beside it)"""
import json, os

def conv(name, c, m, hw, k, stride=1, pad=0):
    return {"name": name, "op": "conv", "N": 1, "C": c, "M": m, "H": hw, "W": hw, "R": k, "S": k,
            "stride": stride, "pad": pad}

def fc(name, c, m):
    return {"name": name, "op": "gemm", "N": 1, "C": c, "M": m}

def lenet5():
    # As in ../shared/models/lenet5-mnist.onnx (MNIST resized to 32x32): the 400 -> 120 layer is the
    # classic C5 convolution (16 -> 120 channels, 5x5 on 5x5), the same MACs as an FC 400 -> 120.
    return [conv("conv1", 1, 6, 32, 5), {"name": "pool1", "op": "pool"},
            conv("conv2", 6, 16, 14, 5), {"name": "pool2", "op": "pool"},
            conv("conv3", 16, 120, 5, 5), fc("fc1", 120, 84), fc("fc2", 84, 10)]

def resnet20():
    # conv3x3 16ch at 32x32, three stages of three basic blocks (16/32/64 channels at 32/16/8 px),
    # stride 2 at the first conv of stages 2 and 3, option-A (parameter-free) shortcuts, FC 64->10.
    layers = [conv("conv1", 3, 16, 32, 3, 1, 1)]
    c, hw = 16, 32
    for stage, m in enumerate([16, 32, 64], start=1):
        for block in range(3):
            stride = 2 if (stage > 1 and block == 0) else 1
            layers.append(conv(f"layer{stage}.{block}.conv1", c, m, hw, 3, stride, 1))
            hw //= stride
            layers.append(conv(f"layer{stage}.{block}.conv2", m, m, hw, 3, 1, 1))
            c = m
    layers.append({"name": "avgpool", "op": "pool"})
    layers.append(fc("fc", 64, 10))
    return layers

here = os.path.dirname(os.path.abspath(__file__))
for name, layers in [("lenet5-mnist", lenet5()), ("resnet20-cifar10", resnet20())]:
    with open(os.path.join(here, name + ".layers.json"), "w") as f:
        f.write('{"layers": [\n' + ",\n".join("  " + json.dumps(l) for l in layers) + "\n]}\n")
