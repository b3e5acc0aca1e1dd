"""pip install ./python (offline; see docs/python.md).

Builds the extension with the checkout's CMake project (target qcast_python, plus the qcast CLI that
qcast.eval / quantize_model / cost run) and installs the package with both. It reuses the checkout's
release build directory (../build, as scripts/build makes it) when that was configured for this
interpreter, else configures a fresh one under the setuptools build directory. $QCAST_BUILD_DIR picks
another build directory. Needs Debian's cmake, ninja-build, g++ and pybind11-dev (scripts/setup).
"""
import importlib.machinery
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _cached_python(build_dir):
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("PYTHON_EXECUTABLE:"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return None


def _same_python(exe):
    """Is the interpreter a build was configured for the one running pip (or its venv's base)?"""
    if not exe:
        return False
    try:
        out = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:3], sys.base_prefix)"],
                             stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return False
    return out == f"{tuple(sys.version_info[:3])} {sys.base_prefix}"


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.environ.get("QCAST_BUILD_DIR")
        if not build_dir:
            default = os.path.join(ROOT, "build")
            build_dir = default if _same_python(_cached_python(default)) else os.path.abspath(
                os.path.join(self.build_temp, "cmake"))
        if not os.path.isfile(os.path.join(build_dir, "CMakeCache.txt")):
            os.makedirs(build_dir, exist_ok=True)
            base = os.path.join(sys.base_prefix, "bin", "python3")
            subprocess.check_call(["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                                   "-DQCAST_BUILD_BENCH=OFF", "-DQCAST_BUILD_TESTS=OFF",
                                   f"-DPYTHON_EXECUTABLE={base if os.path.exists(base) else sys.executable}"])
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "qcast_python", "qcast_cli"])
        suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
        built = os.path.join(build_dir, "python", "qcast", "_qcast" + suffix)
        if not os.path.isfile(built):
            raise RuntimeError(f"{built} was not built (is pybind11-dev installed for this python?)")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(built, dest)
        # The CLI and its lazily loaded ONNX module, at the relative path the CLI looks for it (../lib/qcast).
        pkg = os.path.dirname(dest)
        os.makedirs(os.path.join(pkg, "bin"), exist_ok=True)
        shutil.copy2(os.path.join(build_dir, "qcast"), os.path.join(pkg, "bin", "qcast"))
        onnx = os.path.join(build_dir, "libqcast_onnx.so")
        if os.path.isfile(onnx):
            os.makedirs(os.path.join(pkg, "lib", "qcast"), exist_ok=True)
            shutil.copy2(onnx, os.path.join(pkg, "lib", "qcast", "libqcast_onnx.so"))


setup(
    name="qcast",
    version="0.1.0",
    description="Bit-exact number formats and fake-quantization (numpy, PyTorch) on qcast's C++ kernels",
    packages=["qcast"],
    package_data={"qcast": ["*.pyi", "py.typed"]},
    ext_modules=[Extension("qcast._qcast", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    install_requires=["numpy"],
    zip_safe=False,
)
