#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds attn (the library and the attn command only; ./scripts/test.sh builds the tests)
# and runs its main job: the tour (check, short bench, train, generate).
set -e
cd "$(dirname "$0")/.."
JOBS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
# gnuplot (for plots) is optional: without apt and without gnuplot the tour runs unplotted
sh scripts/deps.sh gnuplot-nox 2>/dev/null || sh scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS" --target attn_cli
./build/attn "$@"
