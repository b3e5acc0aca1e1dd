#!/usr/bin/env python3
"""`mpirun -n 3 qcast sweep`: rank 0 owns the database and hands out points on a dynamic queue; the rows
(wall times aside) equal those of a one-process sweep, and a failing point still fails alone.

Usage: test_sweep_mpi.py QCAST_BINARY SHARED_DIR  (exit 77 = skipped: no mpirun, qcast built without the
MPI module, or the shared models absent)
"""
import os
import shutil
import subprocess
import sys
import tempfile

from _sweep_support import lenet_spec, rows


def main():
    qcast, shared = sys.argv[1], sys.argv[2]
    mpirun = shutil.which("mpirun")
    if not mpirun:
        print("skip: no mpirun (openmpi-bin)")
        return 77
    if not any(f.startswith("libqcast_mpi") for f in os.listdir(os.path.dirname(os.path.abspath(qcast)))):
        print("skip: qcast was built without MPI (libopenmpi-dev absent at configure time)")
        return 77
    m = os.path.join(shared, "models", "lenet5-mnist.onnx")
    if not os.path.exists(m):
        print("skip: shared models absent")
        return 77
    spec_text = lenet_spec(shared, "[{}, {weights: int8@fp32/ch0}, {weights: mxfp4, acts: mxfp8}, {weights: bogus}]", "[rtn, gptq]")
    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "spec.yaml")
        with open(spec, "w") as f:
            f.write(spec_text)
        one = os.path.join(tmp, "one.sqlite")
        subprocess.run([qcast, "sweep", spec, "--db", one, "--threads", "1", "--quiet"], check=True, capture_output=True)
        three = os.path.join(tmp, "three.sqlite")
        env = dict(os.environ, OMPI_MCA_rmaps_base_oversubscribe="1")
        cmd = [mpirun, "-n", "3", "--oversubscribe"]
        if os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
        p = subprocess.run(cmd + [qcast, "sweep", spec, "--db", three, "--threads", "1"], capture_output=True, text=True, env=env,
                           timeout=600)
        if p.returncode != 0:
            print(p.stdout, p.stderr)
            print("FAIL: mpirun -n 3 qcast sweep failed")
            return 1
        a, b = rows(one)[:2], rows(three)[:2]
        fails = 0
        if len(a[0]) != 7:
            print(f"FAIL: 7 points expected, got {len(a[0])}")
            fails += 1
        if a != b:
            print("FAIL: rows of 3 ranks differ from 1 process")
            for x, y in zip(a[0], b[0]):
                if x != y:
                    print(" 1:", x, "\n 3:", y)
            fails += 1
        st = [r[8] for r in b[0]]
        if st.count("error") != 2 or st.count("ok") != 5:
            print(f"FAIL: statuses {st}")
            fails += 1
        # A second launch without --resume is refused by rank 0, and the whole job ends with exit 2.
        p = subprocess.run(cmd + [qcast, "sweep", spec, "--db", three], capture_output=True, text=True, env=env, timeout=300)
        if p.returncode != 2 or "--resume" not in p.stderr:
            print(f"FAIL: existing db under MPI: rc {p.returncode}: {p.stderr[-500:]}")
            fails += 1
    print("ok" if not fails else f"{fails} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
