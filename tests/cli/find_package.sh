#!/usr/bin/env bash
# Installs qcast into a scratch prefix and builds a user project against it with find_package(qcast).
# Usage: find_package.sh QCAST_BINARY SHARED_DIR   (the build folder is the binary's folder)
set -euo pipefail
build="$(cd "$(dirname "$1")" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
scratch="$(mktemp -d /tmp/qcast-pkg-XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
cmake -S "$here/consumer" -B "$scratch/build" -G Ninja -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/build" >/dev/null
out="$("$scratch/build/consumer")"
echo "$out"
[ "$out" = "e2m1@e8m0/b32/floor 4.25 4 -0.5 3" ]
