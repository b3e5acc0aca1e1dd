#!/usr/bin/env bash
# Issue 18: re-quantizing a GGUF through qcast to the type it already has gives back the same file contents.
# For every ggml type qcast writes: quantize a model (stories260K, rows of 64 / 172, and a random llama2.c
# model of dim 256 whose rows are whole k-quant blocks) to X.gguf, quantize X.gguf again with the same
# --weights, and compare every tensor (type and bytes). llama.cpp's searched quantizers (k-quants, IQ4_NL)
# are not idempotent on their own output, so this holds only because rtn keeps a GGUF's blocks when they
# are of the requested type (ptq::rtn_keeping_blocks).
# Usage: gguf_requantize.sh QCAST SHARED_DIR
set -uo pipefail
Q="$1"
S="$2"
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
for f in models/stories260K.bin models/tok512.bin data/tinystories/valid-excerpt.txt; do
  [ -f "$S/$f" ] || { echo "gguf_requantize: skipped: $S/$f is absent"; exit 77; }
done
PY=/usr/bin/python3
"$PY" -c "import numpy" 2>/dev/null || { echo "gguf_requantize: skipped: Debian's python3 with numpy is needed"; exit 77; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$SRC" && "$PY" -c "
import sys; sys.path.insert(0, 'bench')
from llama_speed import write_random_llama
write_random_llama('$work/random256.bin', 256, 512, 2, 8, 512, 512, seed=3)") || { echo "FAIL: could not write the random model"; exit 1; }

compare() {  # A.gguf B.gguf: every tensor's type and bytes equal
  "$PY" - "$1" "$2" <<'EOF'
import struct, sys
def tensors(path):
    b = open(path, "rb").read()
    o = 0
    def u(fmt):
        nonlocal o
        v = struct.unpack_from("<" + fmt, b, o)[0]
        o += struct.calcsize("<" + fmt)
        return v
    def s():
        nonlocal o
        n = u("Q"); v = b[o:o + n]; o += n
        return v.decode()
    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def val(t):
        if t == 8: return s()
        if t == 9:
            at = u("I"); n = u("Q")
            return [val(at) for _ in range(n)]
        return u(sizes[t])
    assert b[:4] == b"GGUF"
    o = 4; u("I"); nt = u("Q"); nkv = u("Q")
    align = 32
    for _ in range(nkv):
        k = s(); v = val(u("I"))
        if k == "general.alignment": align = v
    ts = []
    for _ in range(nt):
        name = s(); nd = u("I"); ne = [u("Q") for _ in range(nd)]; typ = u("I"); off = u("Q")
        ts.append((name, typ, off))
    base = (o + align - 1) // align * align
    ends = sorted(t[2] for t in ts) + [len(b) - base]
    return {name: (typ, b[base + off:base + min(e for e in ends if e > off)]) for name, typ, off in ts}
a, c = tensors(sys.argv[1]), tensors(sys.argv[2])
bad = [k for k in a if a[k] != c.get(k)]
types = sorted({t for t, _ in a.values()})
print(f"{len(a)} tensors (ggml types {types}), {len(bad)} differ {bad[:3]}")
sys.exit(1 if bad or set(a) != set(c) else 0)
EOF
}

fail=0
calib=(--calib "text:$S/data/tinystories/valid-excerpt.txt" --calib-samples 1 --calib-tokens 16 --quiet)
for model in "$S/models/stories260K.bin" "$work/random256.bin"; do
  for w in q8_0 q4_0 q8_0_ggml q4_0_ggml q4_1 q5_0 q5_1 mxfp4 q2_k q3_k q4_k q5_k q6_k iq4_nl mxfp4_ggml nvfp4_ggml fp16; do
    a="$work/a.$w.gguf" b="$work/b.$w.gguf"
    "$Q" quantize "$model" --tokenizer "$S/models/tok512.bin" --weights "$w" --method rtn "${calib[@]}" --out "$a" 2>/dev/null ||
      { echo "FAIL: $(basename "$model") $w: quantize"; fail=1; continue; }
    "$Q" quantize "$a" --tokenizer "$S/models/tok512.bin" --weights "$w" --method rtn "${calib[@]}" --out "$b" 2>/dev/null ||
      { echo "FAIL: $(basename "$model") $w: quantize of the GGUF"; fail=1; continue; }
    printf '%-16s %-10s ' "$(basename "$model" .bin)" "$w"
    compare "$a" "$b" || { echo "FAIL: $(basename "$model") $w: the re-quantized GGUF differs"; fail=1; }
  done
done
exit $fail
