#!/usr/bin/env python3
"""`pip install ./python` works offline into a fresh venv made with --system-site-packages (Debian 12's
python refuses system-wide pip installs), and the installed package imports, casts and finds its CLI.

Usage: test_pip_install.py QCAST_CLI SHARED_DIR   (exit 77 when venv / pip are unavailable)
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _support  # noqa: E402

CHECK = r"""
import os, sys, numpy as np, qcast
assert os.path.realpath(qcast.__file__).startswith(os.path.realpath(sys.prefix)), qcast.__file__
x = np.linspace(-3, 3, 64, dtype=np.float32).reshape(2, 32)
assert (qcast.cast(x, "mxfp4") == qcast.decode(qcast.encode(x, "mxfp4"))).all()
assert os.path.realpath(qcast.cli_path()).startswith(os.path.realpath(sys.prefix)), qcast.cli_path()
print(qcast.cli_path())
"""


def test_pip_install_offline_into_venv():
    with tempfile.TemporaryDirectory(prefix="qcast-venv-") as tmp:
        venv = os.path.join(tmp, "venv")
        r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise _support.Skip(f"python3 -m venv failed (python3-venv missing?): {r.stdout.strip()[-300:]}")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QCAST_CLI")}
        env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
        py = os.path.join(venv, "bin", "python")
        r = subprocess.run([py, "-m", "pip", "install", "--no-build-isolation", os.path.join(_support.ROOT, "python")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert r.returncode == 0, r.stdout[-3000:]
        r = subprocess.run([py, "-c", CHECK], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           cwd=tmp)
        assert r.returncode == 0, r.stdout[-3000:]
        out = subprocess.run([r.stdout.strip().splitlines()[-1], "formats"], stdout=subprocess.PIPE, text=True)
        assert out.returncode == 0 and "mxfp4" in out.stdout


if __name__ == "__main__":
    sys.exit(_support.main(dict(globals())))
