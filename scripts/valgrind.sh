#!/bin/sh
# SPDX-License-Identifier: MIT
# valgrind.sh — the whole test suite under valgrind memcheck.
#
# Builds build-vg (Release -O2 plus -g, no sanitizers) and runs every ctest
# test under
#   valgrind --error-exitcode=99 --leak-check=full
#            --errors-for-leak-kinds=definite,indirect
# one at a time, at a small ATTN_TEST_SCALE (default 0.05; test_sdpa_smoke's
# random cases: ATTN_SMOKE_N, default 10 here instead of 60). The shell tests
# of the attn command (tests/cli/*.sh) run with a wrapper that puts every
# `attn` invocation under valgrind; their logs are scanned for errors.
# Exits non-zero if any test fails or valgrind reports any error.
#
# usage: scripts/valgrind.sh [REGEX]     (only the tests whose name matches)
# env:   ATTN_TEST_SCALE   (default 0.05)
#        ATTN_SMOKE_N      (default 10)
#        ATTN_VG_CLI=0     skip the attn command's shell tests
#        ATTN_VG_TRAIN=1   run tests/cli/test_train.sh too (> 20 min under valgrind)
#                          instead of short train / generate runs (cli_train_short)
#        ATTN_VG_JOBS      build jobs (default: nproc)
# Logs: build-vg/valgrind/<test>.log (and <test>.vg.<pid>.log for the CLI).
# About 20 min on the 2-core machine (docs/testing.md has the measured times).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
RE=${1:-.}
t0=$(date +%s)
export ATTN_TEST_SCALE="${ATTN_TEST_SCALE:-0.05}"
export ATTN_SMOKE_N="${ATTN_SMOKE_N:-10}"
sh scripts/deps.sh valgrind || exit 1
cmake -S . -B build-vg -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g >/dev/null || exit 1
cmake --build build-vg -j"${ATTN_VG_JOBS:-$(nproc)}" >/dev/null || exit 1

B=$ROOT/build-vg
L=$B/valgrind
rm -rf "$L"
mkdir -p "$L"
VG="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --num-callers=40"

# `attn` under valgrind, for the shell tests: they check exit codes and
# stderr, so valgrind writes to its own per-process log, and exit code 99
# (= valgrind found errors) is caught by scanning those logs afterwards.
cat >"$L/attn" <<EOF
#!/bin/sh
exec $VG --log-file="\$ATTN_VG_LOG.vg.%p.log" "$B/attn" "\$@"
EOF
chmod +x "$L/attn"

# cli_test_train trains 30 steps several times: > 20 min under valgrind. By
# default it is replaced by cli_train_short: the same code paths (train,
# generate past the context, LoRA, 1-byte context, an error) on tiny runs.
cat >"$L/train_short.sh" <<'EOF'
set -e
A=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$A" train --steps 3 --batch 4 --log-every 1 --out "$T/a.safetensors"
"$A" generate --ckpt "$T/a.safetensors" --tokens 70 --seed 2
"$A" generate --ckpt "$T/a.safetensors" --prompt "" --tokens 5 --temperature 0
"$A" train --lora 2 --base "$T/a.safetensors" --steps 2 --batch 4 --out "$T/l.safetensors"
"$A" generate --ckpt "$T/l.safetensors" --tokens 10 --top-k 0
"$A" train --seq 1 --batch 1 --steps 2 --out "$T/s1.safetensors"
"$A" generate --ckpt "$T/s1.safetensors" --tokens 5
if "$A" train --dim 64 --heads 3 --steps 1; then exit 1; fi
echo "train_short: all ran"
EOF

tests=$(cd "$B" && ctest -N | sed -n 's/^ *Test *#[0-9]*: //p')
if [ "${ATTN_VG_TRAIN:-0}" = 0 ]; then tests=$(echo "$tests" | sed 's/^cli_test_train$/cli_train_short/'); fi
tests=$(echo "$tests" | grep -E "$RE")
nfail=0
npass=0
failed=""
for t in $tests; do
    start=$(date +%s)
    case $t in
    cli_*)
        if [ "${ATTN_VG_CLI:-1}" = 0 ]; then echo "skip $t (ATTN_VG_CLI=0)"; continue; fi
        script=tests/cli/${t#cli_}.sh
        [ $t = cli_train_short ] && script=$L/train_short.sh
        ATTN_VG_LOG=$L/$t sh "$script" "$L/attn" >"$L/$t.log" 2>&1
        rc=$?
        # any memcheck error, or a definite/indirect leak, shows in its ERROR SUMMARY
        if grep -l 'ERROR SUMMARY: [1-9]' "$L/$t".vg.*.log >/dev/null 2>&1; then rc=99; fi
        ;;
    *)
        exe=$B/${t#example_} # example_<name> runs examples/<name>.c's binary
        $VG --log-file="$L/$t.vg.log" "$exe" >"$L/$t.log" 2>&1
        rc=$?
        ;;
    esac
    secs=$(($(date +%s) - start))
    if [ $rc -eq 0 ]; then
        npass=$((npass + 1))
        echo "ok   $t (${secs} s)"
    else
        nfail=$((nfail + 1))
        failed="$failed $t"
        echo "FAIL $t (exit status $rc, ${secs} s)"
        tail -n 5 "$L/$t.log" | sed 's/^/    | /'
        for f in "$L/$t".vg*.log; do
            [ -f "$f" ] && grep -q 'ERROR SUMMARY: [1-9]' "$f" && { echo "    $f:"; sed -n "/Command:/,\$p" "$f" | head -n 40 | sed 's/^/    | /'; }
        done
    fi
done
echo "valgrind: $(($(date +%s) - t0)) s in all, ATTN_TEST_SCALE=$ATTN_TEST_SCALE${failed:+, failed:$failed}"
echo "valgrind: $npass passed, $nfail failed"
[ $nfail -eq 0 ]
