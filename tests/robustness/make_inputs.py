#!/usr/bin/env python3
"""Writes the adversarial inputs of tests/robustness/run.sh into DIR (standard library only)."""
import gzip, json, struct, sys, zlib, os

out = sys.argv[1]
def path(n): return os.path.join(out, n)

# --- minimal protobuf / ONNX writer (field numbers from onnx.proto)
def varint(v):
    v &= (1 << 64) - 1
    b = bytearray()
    while v >= 0x80:
        b.append((v & 0x7f) | 0x80); v >>= 7
    b.append(v)
    return bytes(b)
def key(f, w): return varint(f << 3 | w)
def i(f, v): return key(f, 0) + varint(v)
def s(f, b):
    if isinstance(b, str): b = b.encode()
    return key(f, 2) + varint(len(b)) + b
def node(op, ins, outs, attrs=()):
    return b"".join(s(1, x) for x in ins) + b"".join(s(2, x) for x in outs) + s(4, op) + b"".join(s(5, a) for a in attrs)
def int_attr(name, v): return s(1, name) + i(3, v) + i(20, 2)
def i64_tensor(name, dims, vals): return b"".join(i(1, d) for d in dims) + i(2, 7) + b"".join(i(7, v) for v in vals) + s(8, name)
def f32_tensor(name, dims, vals): return b"".join(i(1, d) for d in dims) + i(2, 1) + s(8, name) + s(9, struct.pack("<%df" % len(vals), *vals))
def vinfo(name, dims):
    shape = b"".join(s(1, i(1, d)) for d in dims)
    return s(1, name) + s(2, s(1, i(1, 1) + s(2, shape)))
def model(nodes, inits, ins, outs):
    g = b"".join(s(1, n) for n in nodes) + s(2, "g") + b"".join(s(5, t) for t in inits) + \
        b"".join(s(11, x) for x in ins) + b"".join(s(12, x) for x in outs)
    return i(1, 8) + s(7, g) + s(8, s(1, "") + i(2, 13))

w = [0.25 * ((k * 7) % 5) - 0.5 for k in range(12)]
open(path("classifier.onnx"), "wb").write(model([node("Gemm", ["x", "W"], ["y"], [int_attr("transB", 1)])],
    [f32_tensor("W", [3, 4], w)], [vinfo("x", [-1, 4])], [vinfo("y", [-1, 3])]))
open(path("image_classifier.onnx"), "wb").write(model([node("Flatten", ["x"], ["f"]), node("Gemm", ["f", "W"], ["y"], [int_attr("transB", 1)])],
    [f32_tensor("W", [3, 4], w)], [vinfo("x", [-1, 1, 2, 2])], [vinfo("y", [-1, 3])]))
open(path("fold_bomb.onnx"), "wb").write(model([node("ConstantOfShape", ["s"], ["big"]), node("Add", ["x", "big"], ["y"])],
    [i64_tensor("s", [2], [20000, 20000])], [vinfo("x", [1, 1])], [vinfo("y", [20000, 20000])]))
open(path("utf8_op.onnx"), "wb").write(model([node(b"Foo\xff\xfe", ["x"], ["y"])], [], [vinfo("x", [1, 4])], [vinfo("y", [1, 4])]))
open(path("cast99.onnx"), "wb").write(model([node("Cast", ["x"], ["y"], [int_attr("to", 99)])], [], [vinfo("x", [1, 4])], [vinfo("y", [1, 4])]))

# --- .npy
def npy(name, descr, shape, data):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, "".join("%d," % x for x in shape))
    h = d + " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
    open(path(name), "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data)
npy("x.npy", "<f4", [4, 4], struct.pack("<16f", *[float(k % 7 - 3) for k in range(16)]))
npy("y_big.npy", "<i8", [4], struct.pack("<4q", 0, 1000000, 1, 2))
npy("y_neg.npy", "<i8", [4], struct.pack("<4q", 0, -1, 1, 2))
npy("t.npy", "<f4", [16], bytes(64))

# --- IDX: a small gzip whose header says one 2x2 image, followed by 4.5 GB of zeros (concatenated members)
def idx_header(dims): return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
zeros = zlib.compressobj(9, zlib.DEFLATED, 31)
chunk = zeros.compress(bytes(64 << 20)) + zeros.flush()
with open(path("bomb-images.gz"), "wb") as f:
    f.write(gzip.compress(idx_header([1, 2, 2]) + bytes(4)))
    for _ in range(70): f.write(chunk)
open(path("bomb-labels.gz"), "wb").write(gzip.compress(idx_header([1]) + bytes(1)))
open(path("bomb.yaml"), "w").write("format: idx\nimages: bomb-images.gz\nlabels: bomb-labels.gz\n")
open(path("resize-images"), "wb").write(idx_header([1000, 2, 2]) + bytes([1]) * 4000)
open(path("resize-labels"), "wb").write(idx_header([1000]) + bytes(1000))
open(path("resize.yaml"), "w").write("format: idx\nimages: resize-images\nlabels: resize-labels\npreprocess: {resize: [1200, 1200]}\n")
open(path("recipe-scalar.yaml"), "w").write("weights: int8\nlayers:\n  - 5\n")

# --- safetensors
def st(name, header, data):
    h = json.dumps(header).encode() if not isinstance(header, bytes) else header
    open(path(name), "wb").write(struct.pack("<Q", len(h)) + h + data)
st("huge_dim.safetensors", {"t": {"dtype": "F32", "shape": [1 << 62], "data_offsets": [0, 4]}}, bytes(4))
st("w.safetensors", {"w": {"dtype": "F32", "shape": [4, 64], "data_offsets": [0, 1024]}},
   struct.pack("<256f", *[float(k % 13 - 6) for k in range(256)]))
def packed(name, fmt, shape, ncodes):
    meta = {"qcast.layout": "packed-v1", "qcast.tensor.w": json.dumps({"format": fmt, "shape": shape, "axis": -1, "groups": 0})}
    st(name, {"__metadata__": meta, "w.codes": {"dtype": "U8", "shape": [ncodes], "data_offsets": [0, ncodes]}}, bytes(ncodes))
packed("packed_huge_shape.safetensors", "int4", [1 << 31, 1 << 31], 128)
packed("packed_other_format.safetensors", "int4", [4, 64], 256)  # int8's 256 code bytes labelled int4
# 1 GiB of float32 zeros, sparse on disk: stats copies it to float32 memory, more than --max-memory 256M allows.
h = json.dumps({"w": {"dtype": "F32", "shape": [16384, 16384], "data_offsets": [0, 1 << 30]}}).encode()
with open(path("big.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    f.truncate(8 + len(h) + (1 << 30))
