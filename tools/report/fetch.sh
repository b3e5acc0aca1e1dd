#!/usr/bin/env bash
# Installs the plotting libraries of `qcast sweep --report` (Vega, Vega-Lite, vega-embed, versions pinned in
# package.json) into tools/report/node_modules (ignored by git). Exit 77 when npm or the registry is
# unreachable, so tests that need them skip.
set -euo pipefail
cd "$(dirname "$0")"
if [ -f node_modules/vega/build/vega.min.js ] && [ -f node_modules/vega-lite/build/vega-lite.min.js ] &&
   [ -f node_modules/vega-embed/build/vega-embed.min.js ]; then exit 0; fi
command -v npm >/dev/null || { echo "tools/report/fetch.sh: npm is not installed" >&2; exit 77; }
if ! timeout 300 npm install --no-audit --no-fund --silent >/dev/null 2>npm-error.log; then
  echo "tools/report/fetch.sh: npm install failed (registry unreachable?):" >&2
  tail -5 npm-error.log >&2 || true
  rm -f npm-error.log
  exit 77
fi
rm -f npm-error.log
