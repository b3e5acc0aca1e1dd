#!/usr/bin/env python3
"""The layer rule of docs/architecture.md is enforced by the build.

1. The real tree passes scripts/check_layers.py with the layer list of CMakeLists.txt.
2. In a copy of the tree, an #include from the kernels layer into nn (a layer above it), and one into
   another layer's private src/ header, each make `cmake --build` of the kernels target fail, with the
   file, line and rule in the message, before anything compiles; the clean copy's check passes.
Usage: test_layers.py SOURCE_DIR
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

src = os.path.abspath(sys.argv[1])
cmakelists = open(os.path.join(src, "CMakeLists.txt")).read()
layers = re.search(r"set\(QCAST_LAYERS ([a-z ]+)\)", cmakelists).group(1).split()
assert layers[0] == "core" and "kernels" in layers and "nn" in layers, layers
checker = os.path.join(src, "scripts", "check_layers.py")


def run(cmd, cwd=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


r = run([sys.executable, checker, "--root", src, "--layers", *layers])
assert r.returncode == 0, "the real tree breaks the layer rule:\n" + r.stderr

with tempfile.TemporaryDirectory() as tmp:
    copy = os.path.join(tmp, "qcast")
    os.mkdir(copy)
    for d in ("src", "include", "tools", "cmake", "scripts"):
        shutil.copytree(os.path.join(src, d), os.path.join(copy, d))
    shutil.copy(os.path.join(src, "CMakeLists.txt"), copy)
    build = os.path.join(tmp, "build")
    r = run(["cmake", "-S", copy, "-B", build, "-G", "Ninja", "-DQCAST_BUILD_TESTS=OFF", "-DQCAST_BUILD_BENCH=OFF",
             "-DQCAST_BUILD_PYTHON=OFF"])
    assert r.returncode == 0, "configure failed:\n" + r.stdout + r.stderr
    r = run(["cmake", "--build", build, "--target", "qcast_layer_check"])
    assert r.returncode == 0, "the copied tree fails the check:\n" + r.stdout + r.stderr

    victim = os.path.join(copy, "src", "kernels", "blas.cpp")
    original = open(victim).read()
    cases = [
        ('#include "qcast/nn/graph.hpp"\n', r"src/kernels/blas\.cpp:\d+: layer 'kernels' includes include/qcast/nn/graph\.hpp of layer 'nn', which lies above it"),
        ('#include "ptq/groups.hpp"\n', r"src/kernels/blas\.cpp:\d+: layer 'kernels' includes src/ptq/groups\.hpp of layer 'ptq', which lies above it"),
    ]
    # a private header of a layer below: io may use kernels' public headers, not its src/ ones
    private_victim = os.path.join(copy, "src", "io", "npy.cpp")
    open(os.path.join(copy, "src", "kernels", "private_helper.hpp"), "w").write("#pragma once\n")
    for planted, expected in cases:
        open(victim, "w").write(planted + original)
        r = run(["cmake", "--build", build, "--target", "qcast_kernels"])
        out = r.stdout + r.stderr
        assert r.returncode != 0, "an upward include did not fail the build:\n" + out
        assert re.search(expected, out), "unexpected message:\n" + out
        assert not os.path.exists(os.path.join(build, "CMakeFiles", "qcast_kernels.dir", "src", "kernels", "blas.cpp.o")), \
            "the kernels compiled although the check failed"
    open(victim, "w").write(original)
    io_original = open(private_victim).read()
    open(private_victim, "w").write('#include "kernels/private_helper.hpp"\n' + io_original)
    r = run(["cmake", "--build", build, "--target", "qcast_layer_check"])
    out = r.stdout + r.stderr
    assert r.returncode != 0 and re.search(r"src/io/npy\.cpp:1: layer 'io' includes src/kernels/private_helper\.hpp, a private header of layer 'kernels'", out), out
    open(private_victim, "w").write(io_original)
    # a public header nobody mapped to a layer is refused too
    open(os.path.join(copy, "include", "qcast", "orphan.hpp"), "w").write("#pragma once\n")
    r = run(["cmake", "--build", build, "--target", "qcast_layer_check"])
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "include/qcast/orphan.hpp: not in any layer" in out, out
print("layer rule enforced: upward and private includes fail the build")
