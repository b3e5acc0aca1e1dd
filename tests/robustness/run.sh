#!/usr/bin/env bash
# Robustness suite (issue 19): every adversarial input must end with exit 2 and a message, within 20 s
# and 4 GB of address space, leaving no output and no temporary file behind.
# Usage: run.sh QCAST_BINARY [SHARED_DIR]
set -uo pipefail
Q="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d /tmp/qcast-robust-XXXXXX)"
trap 'rm -rf "$work"' EXIT
in="$work/in"
mkdir -p "$in"
python3 "$here/make_inputs.py" "$in" || { echo "cannot create the inputs"; exit 1; }
fails=0
n=0

# check NAME NEEDLE ARGS...: runs qcast ARGS in an empty output directory $out (ARGS may name $out/...).
check() {
  local name="$1" needle="$2"
  shift 2
  n=$((n + 1))
  rm -rf "$work/out" && mkdir -p "$work/out"
  local err="$work/err"
  (cd "$work/out" && ulimit -v 4000000 && exec timeout 20 "$Q" "$@") >"$work/stdout" 2>"$err"
  local rc=$?
  local left
  left="$(ls -A "$work/out")"
  if [ "$rc" -ne 2 ] || [ ! -s "$err" ] || ! grep -qF -- "$needle" "$err" || [ -n "$left" ]; then
    echo "FAIL $name: rc=$rc (want 2), message: $(head -c 400 "$err"), left in the output directory: [$left]"
    fails=$((fails + 1))
  else
    echo "ok   $name"
  fi
}

out="$work/out"
check labels-eval-big "label 1000000" eval "$in/classifier.onnx" --data "npy:$in/x.npy,$in/y_big.npy"
check labels-eval-neg "label -1" eval "$in/classifier.onnx" --data "npy:$in/x.npy,$in/y_neg.npy"
check labels-mixed-big "3 classes" quantize "$in/classifier.onnx" --weights int8@fp32/ch0 --method mixed@6 --calib "npy:$in/x.npy,$in/y_big.npy" --out "$out/q.safetensors" --quiet
check labels-mixed-neg "label -1" quantize "$in/classifier.onnx" --weights int8@fp32/ch0 --method mixed@6 --calib "npy:$in/x.npy,$in/y_neg.npy" --out "$out/q.safetensors" --quiet
check idx-gzip-bomb "longer than" eval "$in/image_classifier.onnx" --data "$in/bomb.yaml"
check resize-before-shape-check "[1, 1200, 1200]" eval "$in/image_classifier.onnx" --data "$in/resize.yaml"
check onnx-fold-bomb "QCAST_FOLD_LIMIT_MB" inspect "$in/fold_bomb.onnx"
check onnx-cast-unknown "data type 99" inspect "$in/cast99.onnx"
check bench-min-time-nan "nan" bench --min-time nan --size 16K -f int8
check temperature-nan "nan" generate m.bin --temperature nan
check time-limit-nan "nan" cost --arch "$in/x.npy" --time-limit nan
check seed-65-bits "64 bits" cast "$in/t.npy" "$out/o.npy" -f int8 --seed 18446744073709551616
check rotate-block-3 "rotate-block" quantize "$in/classifier.onnx" --weights int8@fp32/ch0 --calib x --out "$out/q.safetensors" --rotate-block 3
check study-huge "limit" study --rows 1048576 --cols 1048576
check decode-huge-shape "codes hold" decode "$in/packed_huge_shape.safetensors" "$out/o.safetensors"
check decode-other-format "take 128" decode "$in/packed_other_format.safetensors" "$out/o.safetensors"
check mixed-nan "mixed@nan" quantize "$in/classifier.onnx" --weights int8@fp32/ch0 --method mixed@nan --calib "npy:$in/x.npy,$in/y_neg.npy" --out "$out/q.safetensors"
check mixed-inf "mixed@inf" quantize "$in/classifier.onnx" --weights int8@fp32/ch0 --method mixed@inf --calib "npy:$in/x.npy,$in/y_neg.npy" --out "$out/q.safetensors"
check quantize-report-dir "--report" quantize "$in/classifier.onnx" --weights int8@fp32/ch0 --calib "npy:$in/x.npy,$in/y_neg.npy" --out "$out/q.safetensors" --report /nonexistent/r.json
check quantize-eval-missing "missing.npy" quantize "$in/classifier.onnx" --weights int8@fp32/ch0 --calib "npy:$in/x.npy,$in/y_neg.npy" --out "$out/q.safetensors" --eval "npy:$in/missing.npy,$in/y_neg.npy"
check infer-output-type "unknown file type" infer "$in/classifier.onnx" "$in/x.npy" -o "$out/y.txt"
check safetensors-huge-dim "too large" stats "$in/huge_dim.safetensors" -f int8
check utf8-escaped 'Foo\xff\xfe' inspect "$in/utf8_op.onnx"
check yaml-in-user-terms "recipe-scalar.yaml:3:5" eval "$in/classifier.onnx" --data x --recipe "$in/recipe-scalar.yaml"
check npy-as-model "tensor file: use qcast cast" inspect "$in/x.npy"
# --max-memory (the bound on what no specific cap covers): flag after or before the command, or the environment.
check max-memory-flag "the --max-memory limit of 256 MiB" stats "$in/big.safetensors" -f int8/g32 --max-memory 256M
check max-memory-first "the --max-memory limit of 256 MiB" --max-memory 256M stats "$in/big.safetensors" -f int8/g32
export QCAST_MAX_MEMORY=200M
check max-memory-env "the --max-memory limit of 200 MiB" stats "$in/big.safetensors" -f int8/g32 --json
unset QCAST_MAX_MEMORY
check max-memory-bad-size "expected a size such as 512M" --max-memory 12Q formats
check safetensors-as-model "tensor file: use qcast cast" generate "$in/w.safetensors"

# A signal while an output is being written removes its temporary file and ends the process by the signal.
big="$work/big.npy"
python3 - "$big" <<'PY'
import struct, sys
d = "{'descr': '<f4', 'fortran_order': False, 'shape': (64, 1048576,), }"
h = d + " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode())
    f.truncate(f.tell() + 64 * 1048576 * 4)
PY
for sig in TERM INT HUP; do
  n=$((n + 1))
  rm -rf "$work/out" && mkdir -p "$work/out"
  ( trap - INT; exec "$Q" cast "$big" "$work/out/o.npy" -f mxfp4 --round stochastic --threads 1 ) 2>/dev/null &
  pid=$!
  for _ in $(seq 1 2000); do ls "$work/out" | grep -q '\.tmp\.' && break; sleep 0.005; done
  kill -s "$sig" "$pid" 2>/dev/null
  { wait "$pid"; } 2>/dev/null
  rc=$?
  left="$(ls -A "$work/out")"
  if [ "$rc" -lt 128 ]; then
    echo "skip signal-$sig: the cast ended (rc=$rc) before the signal"
  elif [ -n "$left" ]; then
    echo "FAIL signal-$sig: left [$left]"
    fails=$((fails + 1))
  else
    echo "ok   signal-$sig (rc=$rc)"
  fi
done

echo "$((n - fails)) of $n passed"
[ "$fails" -eq 0 ]
