#!/usr/bin/env bash
# Determinism matrix (issue 19, item 4): every command that computes runs at --threads 1, 2 and 3 and its
# outputs (files, and stdout where it is --json) must be the same bits. JSON is compared after dropping
# only wall-clock fields (seconds, times, rates) and the echo of --threads; every other field, every
# number included, must match exactly. reuse and npu, which compute on one thread and have no --threads, run
# three times and must repeat themselves.
# bench is not in the matrix: it prints throughputs only (wall-clock by nature).
# Usage: determinism.sh QCAST SHARED_DIR     (skips with 77 when the shared models are absent)
set -uo pipefail
Q="$1"
S="$2"
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
for f in models/lenet5-mnist.onnx models/lenet5-mnist.ref-input.npy models/lenet5-mnist.safetensors models/stories260K.bin \
         models/tok512.bin data/mnist/t10k-images-idx3-ubyte.gz data/tinystories/valid-excerpt.txt; do
  [ -f "$S/$f" ] || { echo "determinism: skipped: $S/$f is absent (the shared models and data are needed)"; exit 77; }
done
PY=/usr/bin/python3
[ -x "$PY" ] || PY="$(command -v python3)" || { echo "determinism: skipped: python3 is needed to compare JSON"; exit 77; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail=0
ncases=0

# Canonical JSON without wall-clock fields (keys ending in seconds, _time, _s, rates) and with the run's own
# output folder replaced by @O@: keys are kept in order, numbers as written by qcast.
normalize() {
  "$PY" - "$1" "$2" <<'EOF'
import json, re, sys
drop = re.compile(r'(^|_)(seconds?|time|times|wall|threads|gbps|per_second|tokens_per_second|samples_per_second|elapsed|s)$')
run_dir = sys.argv[2]
def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items() if not drop.search(k)}
    if isinstance(v, list):
        return [clean(x) for x in v]
    if isinstance(v, str):
        return v.replace(run_dir, "@O@")  # a run names its own output folder
    return v
p = sys.argv[1]
with open(p) as f:
    text = f.read()
try:
    j = json.loads(text, parse_float=lambda s: s, parse_int=lambda s: s)  # numbers compared as written
except ValueError:
    sys.exit(0)  # not JSON: compared byte for byte
with open(p, "w") as f:
    json.dump(clean(j), f, indent=1)
EOF
}

# case NAME MODE ARGS...: MODE is "threads" (ARGS get --threads T) or "repeat" (run three times as is).
# In ARGS, @O@ stands for the run's own output folder and @T@ for its thread count; stdout is compared
# when MODE is followed by ":json" (it must then be JSON).
case_() {
  local name="$1" mode="$2"
  shift 2
  local json=0
  [[ "$mode" == *:json ]] && { json=1; mode="${mode%:json}"; }
  [[ "$name" =~ ${DETERMINISM_ONLY:-.} ]] || return 0
  ncases=$((ncases + 1))
  for t in 1 2 3; do
    local o="$work/$name/t$t"
    mkdir -p "$o"
    local args=()
    for a in "$@"; do a="${a//@O@/$o}"; a="${a//@T@/$t}"; args+=("$a"); done
    [ "$mode" = threads ] && args+=(--threads "$t")
    if ! "$Q" "${args[@]}" >"$work/$name/stdout.$t" 2>"$work/$name/stderr.$t"; then
      echo "FAIL $name: exit $? at run $t: qcast ${args[*]}"
      sed 's/^/    /' "$work/$name/stderr.$t" | tail -5
      fail=1
      return
    fi
    if [ "$json" = 1 ]; then
      cp "$work/$name/stdout.$t" "$o/stdout.json"
      "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$o/stdout.json" 2>/dev/null ||
        { echo "FAIL $name: stdout is not JSON"; fail=1; return; }
    fi
    for f in "$o"/*.json; do [ -f "$f" ] && normalize "$f" "$o"; done
  done
  local what="threads 1/2/3"
  [ "$mode" = repeat ] && what="3 repeats"
  for t in 2 3; do
    if ! diff -r "$work/$name/t1" "$work/$name/t$t" >"$work/$name/diff" 2>&1; then
      echo "FAIL $name: run $t differs from run 1 ($what):"
      head -20 "$work/$name/diff" | sed 's/^/    /'
      fail=1
      return
    fi
  done
  local n
  n="$(find "$work/$name/t1" -type f | wc -l)"
  [ "$n" -gt 0 ] || { echo "FAIL $name: no output to compare"; fail=1; return; }
  echo "ok   $name ($what, $n outputs bit-identical)"
}

M="$S/models"
LENET="$M/lenet5-mnist.onnx"
STORIES="$M/stories260K.bin"
TOK="$M/tok512.bin"
MNIST="$SRC/examples/data/mnist-lenet5.yaml"
TEXT="text:$S/data/tinystories/valid-excerpt.txt"
ARCH="$SRC/examples/arch/eyeriss_like.yaml"
PROB="$SRC/examples/problems/conv2d.prob.yaml"
W="$M/lenet5-mnist.safetensors"
X="$M/lenet5-mnist.ref-input.npy"

# Tensor commands (stochastic rounding with a seed is the thread-sensitive case).
case_ cast-mxfp4-stoch threads cast "$W" @O@/o.safetensors -f mxfp4 --round stochastic --seed 7
case_ cast-int4-g32 threads cast "$X" @O@/o.npy -f int4@fp16/g32
case_ cast-nvfp4 threads cast "$W" @O@/o.safetensors -f nvfp4
case_ encode-mxfp6 threads encode "$W" @O@/o.safetensors -f mxfp6_e2m3 --round stochastic --seed 3
case_ encode-int8-ch threads encode "$X" @O@/o.safetensors -f int8@fp32/ch0
"$Q" encode "$W" "$work/enc.safetensors" -f mxfp4 --threads 2 >/dev/null 2>&1 || { echo "FAIL encode for decode"; fail=1; }
case_ decode threads decode "$work/enc.safetensors" @O@/o.safetensors
case_ stats threads:json stats "$W" -f mxfp4 --json

# Models: inference and evaluation (classifier and language model; static activation calibration).
case_ infer-lenet threads:json infer "$LENET" "$X" -o @O@/y.npy --weights mxfp4 --acts mxfp8 --json
# ResNet-20: its convolutions run through oneDNN (blocked layouts, fused residual Add + Relu), with and
# without activation fake-quant on the blocked tensors.
case_ infer-resnet20 threads:json infer "$M/resnet20-cifar10.onnx" "$M/resnet20-cifar10.ref-input.npy" -o @O@/y.npy --json
case_ infer-resnet20-w4a8 threads:json infer "$M/resnet20-cifar10.onnx" "$M/resnet20-cifar10.ref-input.npy" -o @O@/y.npy --weights mxfp4 --acts mxfp8 --json
case_ eval-lenet threads:json eval "$LENET" --data "$MNIST" --data-root "$S/data/mnist" --limit 256 --weights int4@fp16/g32 --json
case_ eval-lenet-static threads:json eval "$LENET" --data "$MNIST" --data-root "$S/data/mnist" --limit 128 --weights int8@fp32/ch0 \
  --acts int8@fp32/tensor --act-observer minmax --calib "$MNIST" --calib-samples 64 --json
case_ eval-stories threads:json eval "$STORIES" --tokenizer "$TOK" --data "$TEXT" --limit 6 --weights mxfp4 --json
case_ generate-seeded threads:json generate "$STORIES" --tokenizer "$TOK" --prompt "Once upon" --steps 48 --temperature 0.9 --seed 11 \
  --weights int4@fp16/g32 --json

# quantize: every PTQ method on both model types, with its report.
lq=(--weights int4@fp16/g32 --calib "$MNIST" --data-root "$S/data/mnist" --calib-samples 48 --calib-batch 16 --quiet)
for m in rtn search gptq ed rotate+gptq lowrank mixed@5 rtn+bias gptq+bias; do
  case_ "quantize-lenet-$m" threads quantize "$LENET" --method "$m" "${lq[@]}" --out @O@/q.safetensors --report @O@/r.json
done
case_ quantize-lenet-gptq-actorder threads quantize "$LENET" --method gptq --act-order "${lq[@]}" --out @O@/q.safetensors --report @O@/r.json
case_ quantize-lenet-static threads quantize "$LENET" --method gptq --weights int8@fp32/ch0 --acts int8@fp32/tensor --act-observer minmax --calib "$MNIST" \
  --data-root "$S/data/mnist" --calib-samples 48 --quiet --out @O@/q.safetensors --report @O@/r.json
sq=(--weights int4@fp16/g32 --tokenizer "$TOK" --calib "$TEXT" --calib-samples 4 --calib-tokens 64 --quiet)
for m in rtn search gptq ed rotate+gptq lowrank mixed@5 quarot+rtn quarot+gptq; do  # mixed: two candidates keep it short
  case_ "quantize-stories-$m" threads quantize "$STORIES" --method "$m" "${sq[@]}" --mixed-formats mxfp4,int8@fp16/g32 --out @O@/q.safetensors --report @O@/r.json
done
case_ quantize-stories-gguf threads quantize "$STORIES" --method gptq --weights q4_0 --tokenizer "$TOK" --calib "$TEXT" \
  --calib-samples 4 --calib-tokens 64 --quiet --out @O@/q.gguf

# Hardware cost model: the mapper's search (seeded sampling + local search over threads) and the model path.
case_ cost-search threads:json cost --arch "$ARCH" --problem "$PROB" --search edp --samples 300 --refine 50 --save-map @O@/map.yaml --json
case_ cost-model threads:json cost --arch "$ARCH" --model "$LENET" --recipe int8 --samples 100 --refine 20 --json
case_ reuse repeat:json reuse 'for j<N; for i<M: B[j][i] += A[i]' --set N=64,M=48 --tile i:8 --json
case_ npu-matmul repeat:json npu --matmul 1000x3000x700 --top 0 --json
case_ npu-model repeat:json npu --device npu1 --type int8 --model "$STORIES" --seq 128 --json
case_ study threads:json study --rows 64 --cols 256 --models "$work/none" --json

echo "determinism: $ncases cases"
exit "$fail"
