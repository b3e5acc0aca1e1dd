#!/usr/bin/env bash
# llama.cpp as the outside reference of qcast's GGUF files (CTest: llamacpp.*). Installs node-llama-cpp
# 3.21.1 (prebuilt CPU llama.cpp, ~83 MB) into this folder's node_modules (git-ignored, kept between runs;
# QCAST_LLAMACPP_DIR overrides the folder), then runs one of the checks:
#   run.sh ppl  QCAST_CLI SHARED_DIR        check.mjs: llama.cpp perplexity == qcast eval, every type written
#   run.sh ref  GGML_REF_BIN SHARED_DIR     ggml_ref.cpp: qcast's ggml formats == ggml's quantize_row_*_ref
# Exit 77 (CTest: skipped) with a message when node / npm are missing or the npm registry is unreachable.
set -euo pipefail
what="$1" cli="$2" shared="$3"
here="$(cd "$(dirname "$0")" && pwd)"
dir="${QCAST_LLAMACPP_DIR:-$here}"
skip() { echo "SKIP: $*"; exit 77; }
[ -d "$shared" ] && shared="$(cd "$shared" && pwd)"       # the checks run from $dir
case "$cli" in /*) ;; *) cli="$PWD/$cli" ;; esac

command -v node >/dev/null || skip "node (Node.js >= 20) not found"
[ -f "$shared/models/stories260K.bin" ] || skip "$shared/models/stories260K.bin not found"
mkdir -p "$dir"
[ "$dir" = "$here" ] || cp "$here/package.json" "$here"/*.mjs "$dir/"  # ESM resolves node_modules beside the script
installed() { node -e "process.exit(require('$dir/node_modules/node-llama-cpp/package.json').version === '3.21.1' && require('fs').existsSync('$dir/node_modules/@node-llama-cpp/linux-x64/package.json') ? 0 : 1)" 2>/dev/null; }
(
  flock 9  # one install at a time (release and ASan ctest may run side by side)
  if ! installed; then
    command -v npm >/dev/null || skip "npm not found: cannot install node-llama-cpp"
    echo "installing node-llama-cpp@3.21.1 into $dir/node_modules"
    # --ignore-scripts: the prebuilt binaries are in @node-llama-cpp/linux-x64; node-llama-cpp's postinstall
    # would only try to download / build llama.cpp where they do not fit.
    (cd "$dir" && timeout 600 npm i -E --omit=optional --ignore-scripts --no-package-lock --no-audit --no-fund \
       node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1) ||
      skip "npm could not install node-llama-cpp@3.21.1 (registry unreachable?)"
  fi
) 9>"$dir/.install.lock"
rc=0; installed || rc=$?
# A skip inside the subshell exits it with 77; the install check above tells whether to go on.
[ $rc -eq 0 ] || skip "node-llama-cpp@3.21.1 is not installed in $dir (see above)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
case "$what" in
  ppl) cd "$dir" && node "$dir/check.mjs" "$cli" "$shared" "$work" "${QCAST_LLAMACPP_STORIES:-10}" ;;
  ref)
    lib="$(ls "$dir"/node_modules/@node-llama-cpp/linux-x64/bins/*/libggml-base.so | head -n 1)"
    "$cli" "$lib" ;;
  *) echo "run.sh: unknown check '$what'" >&2; exit 2 ;;
esac
