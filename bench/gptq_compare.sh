#!/usr/bin/env bash
# GPTQ speed, qcast vs a straightforward PyTorch implementation (Debian's python3-torch), same problem and
# threads: 4096x4096 layer, 2048 tokens, int4/g128, Hessian accumulation included.
# Usage: bench/gptq_compare.sh [threads]   (needs a release build: scripts/build release)
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-2}"
export OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" QCAST_BENCH_THREADS="$t"
echo "== qcast (threads=$t)"
build/bench/qcast_bench --benchmark_filter='BM_Gptq/4096' 2>/dev/null | grep BM_Gptq
echo "== torch (threads=$t)"
/usr/bin/python3 bench/gptq_torch.py --threads "$t"
/usr/bin/python3 bench/gptq_torch.py --threads "$t" --act-order
