#!/usr/bin/env bash
# Runs every example command in docs/*.md: each line of the form "$ qcast ..." inside a code block.
# Usage: doc_examples.sh QCAST_BINARY SHARED_DIR
# The examples run in a scratch folder laid out like a checkout beside ../shared:
#   SCRATCH/repo (working directory; holds weights.npy and model.safetensors made here, and examples/),
#   SCRATCH/shared -> SHARED_DIR. An example that names ../shared is skipped when it is absent.
set -euo pipefail
qcast="$1"; shared="$2"
here="$(cd "$(dirname "$0")/../.." && pwd)"
scratch="$(mktemp -d /tmp/qcast-doc-XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/repo/bin"
ln -s "$here/examples" "$scratch/repo/examples"
[ -d "$shared" ] && ln -s "$(cd "$shared" && pwd)" "$scratch/shared"
ln -s "$qcast" "$scratch/repo/bin/qcast"
export PATH="$scratch/repo/bin:$PATH"
cd "$scratch/repo"
/usr/bin/python3 - <<'PY'
import numpy as np, json, struct
rng = np.random.default_rng(0)
w = rng.standard_normal((64, 256)).astype(np.float32)
np.save("weights.npy", w)
b = rng.standard_normal(64).astype(np.float32)
tensors = {"fc.weight": w, "fc.bias": b}
header, off, blobs = {}, 0, []
for k, v in tensors.items():
    header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + v.nbytes]}
    off += v.nbytes; blobs.append(v.tobytes())
h = json.dumps(header).encode(); h += b" " * ((8 - len(h) % 8) % 8)
open("model.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
ran=0; skipped=0; failed=0
for doc in "$here"/docs/*.md; do
  while IFS= read -r line; do
    cmd="${line#\$ }"
    if [[ "$cmd" == *"../shared"* && ! -d "$scratch/shared" ]]; then skipped=$((skipped+1)); continue; fi
    if bash -c "$cmd" >/dev/null 2>"$scratch/err"; then
      ran=$((ran+1))
    else
      failed=$((failed+1)); echo "FAILED ($(basename "$doc")): $cmd"; sed 's/^/    /' "$scratch/err"
    fi
  done < <(grep -E '^\$ qcast ' "$doc" || true)
done
echo "examples: $ran passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$ran" -gt 0 ]
