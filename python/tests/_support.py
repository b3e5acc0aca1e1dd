"""Shared helpers of the python/tests scripts: argument handling, the CLI, a tiny test runner.

Each test script runs as `python3 test_x.py QCAST_CLI SHARED_DIR` (CTest) or under pytest (then the CLI
comes from $QCAST_CLI or build/qcast and the shared folder from $QCAST_SHARED or ../shared)."""
import os
import subprocess
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def cli():
    if len(sys.argv) > 1 and os.path.isfile(sys.argv[1]):
        return sys.argv[1]
    return os.environ.get("QCAST_CLI", os.path.join(ROOT, "build", "qcast"))


def shared():
    if len(sys.argv) > 2:
        return sys.argv[2]
    return os.environ.get("QCAST_SHARED", os.path.join(ROOT, "..", "shared"))


def run_cli(*args):
    p = subprocess.run([cli()] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.returncode == 0, f"qcast {' '.join(map(str, args))}: exit {p.returncode}: {p.stderr}"
    return p.stdout


try:  # under pytest a skip is pytest's own
    import pytest

    Skip = pytest.skip.Exception
except ImportError:
    class Skip(Exception):
        pass


def main(namespace):
    """Runs every test_* function of a module; prints one line each; exit 1 on a failure, 77 if all skipped."""
    tests = [(n, f) for n, f in sorted(namespace.items()) if n.startswith("test_") and callable(f)]
    failed = skipped = 0
    for name, fn in tests:
        try:
            fn()
            print(f"ok    {name}")
        except Skip as e:
            skipped += 1
            print(f"skip  {name}: {e}")
        except Exception:  # noqa: BLE001
            failed += 1
            print(f"FAIL  {name}")
            traceback.print_exc()
    print(f"{len(tests) - failed - skipped} passed, {failed} failed, {skipped} skipped")
    if failed:
        return 1
    return 77 if skipped == len(tests) else 0
