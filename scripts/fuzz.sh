#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz and runs each.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#     SECONDS  fuzzing time per target (default 60); 0 = only replay the committed
#              corpora and regression inputs
#     TARGET   json safetensors npy hfconfig sdpa mha (default: all)
# New inputs go to build-fuzz/corpus/<target> (never into the source tree); crashes
# to build-fuzz/artifacts/. Exits non-zero if any target found a problem.
# Extra libFuzzer flags can be passed in ATTN_FUZZ_FLAGS (e.g. "-jobs=2 -workers=2").
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-json safetensors npy hfconfig sdpa sdpa_typed mha}
BUILD=${ATTN_FUZZ_BUILD:-build-fuzz}
CC=${CC_FUZZ:-clang}

if ! command -v "$CC" >/dev/null 2>&1; then
  echo "fuzz.sh: $CC not found (libFuzzer needs clang)" >&2
  exit 1
fi
CC="$CC" cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DATTN_FUZZ=ON \
  -DATTN_BUILD_TESTS=OFF -DATTN_BUILD_TOOLS=OFF >/dev/null
T=""
for t in $TARGETS; do T="$T fuzz_$t"; done
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$(nproc)" --target $T

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$BUILD/artifacts"
failed=""
for t in $TARGETS; do
  seeds="tests/fuzz/corpus/$t"
  [ -d "tests/fuzz/regressions/$t" ] && seeds="$seeds tests/fuzz/regressions/$t"
  dict=""
  [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
  echo "== fuzz_$t (${SECS}s)"
  if [ "$SECS" = 0 ]; then
    # shellcheck disable=SC2086
    "$BUILD/fuzz_$t" -runs=0 -artifact_prefix="$BUILD/artifacts/$t-" $seeds || failed="$failed $t"
  else
    work="$BUILD/corpus/$t"
    mkdir -p "$work"
    # shellcheck disable=SC2086
    "$BUILD/fuzz_$t" -max_total_time="$SECS" -max_len=4096 -malloc_limit_mb=64 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-" $dict ${ATTN_FUZZ_FLAGS:-} \
      "$work" $seeds || failed="$failed $t"
  fi
done
if [ -n "$failed" ]; then
  echo "fuzz.sh: FAILED:$failed (inputs in $BUILD/artifacts/)" >&2
  exit 1
fi
echo "fuzz.sh: all targets clean"
