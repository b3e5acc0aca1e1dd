#!/bin/bash
# Prints the MAC-model table of docs/cost.md (pJ per MAC at 45 nm per format pair) from `qcast cost --json`.
# Usage: examples/mac_table.sh   (QCAST=path/to/qcast to use another binary)
cd "$(dirname "$0")/.."
echo "| W x A -> ACC | block | multiply | align | accumulate | scale | lookup | total pJ | / int8 |"
echo "|---|---|---|---|---|---|---|---|---|"
int8=$("${QCAST:-build/qcast}" cost --arch examples/arch/eyeriss_like.yaml --problem examples/problems/conv2d.prob.yaml --samples 1 --refine 0 --json --recipe int8 | python3 -c 'import json,sys; print(json.load(sys.stdin)["recipe"]["mac"]["total_pj"])')
while read w a acc; do
  r="$(mktemp)"
  printf "weights: %s\nactivations: %s\n" "$w" "$a" > $r
  [ -n "$acc" ] && echo "accumulator: $acc" >> $r
  "${QCAST:-build/qcast}" cost --arch examples/arch/eyeriss_like.yaml --problem examples/problems/conv2d.prob.yaml --samples 1 --refine 0 --json --recipe $r |
  python3 -c "
import json,sys
m=json.load(sys.stdin)['recipe']['mac']
b=('%d%s'%(m['block'],' fixed' if m['fixed_point_block'] else '')) if m['block'] else '-'
print('| $w x $a -> %s | %s | %.4f | %.4f | %.4f | %.4f | %.4f | **%.4f** | %.2f |'%(m['accumulator'],b,m['multiply_pj'],m['align_pj'],m['accumulate_pj'],m['scale_pj'],m['lookup_pj'],m['total_pj'],m['total_pj']/$int8))"
  rm -f "$r"
done <<'L'
fp32 fp32
fp16 fp16
bf16 bf16
e4m3 e4m3
e4m3 e4m3 fp16
e5m2 e5m2 fp16
mxfp8 mxfp8
mxint8 mxint8
int8 int8
int8 int8 int16
mxfp6 mxfp6
int4 int4
int4 int4 int16
mxfp4 mxfp4
nvfp4 nvfp4
mxfp4 mxfp8
nf4 bf16
nvfp4 bf16
int4@fp16/g128 fp16
L
