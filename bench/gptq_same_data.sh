#!/usr/bin/env bash
# Checks that qcast's GPTQ and bench/gptq_torch.py implement the same algorithm: both quantize the same
# W and X (int4/g128, no act-order; pass --act-order for act-order) and the results are compared:
# fraction of differing weights and the output errors ||(W - Q) X^T||^2.
# Usage: bench/gptq_same_data.sh [rows cols tokens] [--act-order]
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1024}" cols="${2:-1024}" tokens="${3:-512}" ao="${4:-}"
dir="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT; echo "data: $dir"
/usr/bin/python3 bench/gptq_torch.py --threads 2 --rows "$rows" --cols "$cols" --tokens "$tokens" $ao --save "$dir"
if [ -n "$ao" ]; then export QCAST_GPTQ_ACT_ORDER=1; fi
QCAST_GPTQ_DATA="$dir" QCAST_BENCH_THREADS=2 build/bench/qcast_bench --benchmark_filter=BM_GptqFromFiles 2>/dev/null | grep BM_
/usr/bin/python3 - "$dir" <<'PY'
import sys, json, numpy as np
d = sys.argv[1]
W, X, Qt, Qc = (np.load(f"{d}/{n}.npy").astype(np.float64) for n in ("W", "X", "Q_torch", "Q_qcast"))
err = lambda Q: float((((W - Q) @ X.T) ** 2).sum())
# Bit-identical values are not expected: BLAS summation order differs, so a group's amax (hence its scale)
# can differ in the last bit. "different_grid_point" counts weights rounded to a different code.
grid = np.abs(Qt - Qc) > 1e-4 * np.maximum(np.abs(Qt), np.abs(Qc))
print(json.dumps({"bitwise_differing": float(np.mean(Qt != Qc)), "different_grid_point": float(np.mean(grid)), "out_err_torch": err(Qt), "out_err_qcast": err(Qc),
                  "out_norm": float(((W @ X.T) ** 2).sum())}))
PY
