#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds attn (the library and the attn command only; ./scripts/test.sh builds the tests)
# and runs its main job: the tour (check, short bench, train, generate).
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh gnuplot-nox
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target attn_cli
./build/attn "$@"
