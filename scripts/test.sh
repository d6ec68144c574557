#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds attn and runs the whole test suite.
set -e
cd "$(dirname "$0")/.."
JOBS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
sh scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS"
cd build && ctest --output-on-failure -j"$JOBS"
