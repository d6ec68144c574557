#!/bin/sh
# Builds attn and runs its main job: the tour (check, short bench, train, generate).
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh gnuplot-nox
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
./build/attn "$@"
