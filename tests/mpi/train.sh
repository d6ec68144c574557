#!/bin/sh
# SPDX-License-Identifier: MIT
# `attn train --mpi` (sequence-parallel over MPI, run by attn-mpi) vs the
# single-process `attn train`: a small LM, a few steps, the same seed; each
# step's loss (--loss-file, %.9g) and the final validation loss of
#   mpirun --oversubscribe -np N attn train --mpi ...   N = 1, 2, 3, 4
# must equal the single-process run within |a - b| <= 1e-5 |b| (fp32
# rounding: the ranks sum the same terms in other orders; local instead of
# global RoPE positions, for one, already move step 1 by 9e-5 |b|); then LoRA
# fine-tuning of the result (--lora 2 --base), -np 2, likewise; and a --seconds
# run over 3 ranks must finish (one clock for all ranks). Each run has a
# timeout, so a hang fails the test.
# Usage: sh tests/mpi/train.sh MPIEXEC BUILD_DIR
set -u
MPIEXEC=${1:-mpirun}
BUILD=${2:-build}
TIMEOUT=${ATTN_MPI_TIMEOUT:-120}
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
HERE=$(cd "$(dirname "$0")" && pwd)
export LSAN_OPTIONS="suppressions=$HERE/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
MCA="--mca btl self,vader --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ARGS="--steps 8 --layers 2 --dim 32 --heads 4 --kv-heads 2 --seq 48 --batch 4 --threads 1 --log-every 1"
fail=0
if ! timeout -k 10 "$TIMEOUT" "$BUILD/attn" train $ARGS --out "$TMP/one.safetensors" --loss-file "$TMP/one.txt" \
    > "$TMP/one.log" 2>&1; then
  cat "$TMP/one.log"; echo "FAILED: single-process attn train"; exit 1
fi
val_one=$(sed -n 's/^validation loss: [0-9.]* -> \([0-9.]*\).*/\1/p' "$TMP/one.log")
# compare LOSSFILE LOG REFLOSS REFVAL: every step's loss within 1e-5 relative, validation within 1e-4
compare() {
  val=$(sed -n 's/^validation loss: [0-9.]* -> \([0-9.]*\).*/\1/p' "$2")
  awk -v v1="$4" -v v2="$val" '
      NR == FNR { ref[$1] = $2; nref++; next }
      { d = $2 - ref[$1]; if (d < 0) d = -d; r = ref[$1] < 0 ? -ref[$1] : ref[$1];
        if (!($1 in ref) || d > 1e-5 * r) { printf "step %s: loss %s vs %s\n", $1, $2, ref[$1]; bad = 1 }
        if (d / r > worst) worst = d / r; n++ }
      END { if (n != nref || n == 0) { print "steps differ: " n " vs " nref; bad = 1 }
            dv = v2 - v1; if (dv < 0) dv = -dv;
            if (v2 == "" || dv > 1e-4 * v1) { print "validation loss " v2 " vs " v1 " (printed to 4 decimals)"; bad = 1 }
            printf "  %d steps, worst |loss - single| / single = %.2g, validation %s vs %s\n", n, worst, v2, v1;
            exit bad }' "$3" "$1"
}
for n in 1 2 3 4; do
  echo "== mpirun -np $n attn train --mpi"
  if ! timeout -k 10 "$TIMEOUT" "$MPIEXEC" --oversubscribe -np "$n" $MCA "$BUILD/attn" train --mpi $ARGS \
      --out "$TMP/mpi$n.safetensors" --loss-file "$TMP/mpi$n.txt" > "$TMP/mpi$n.log" 2>&1; then
    cat "$TMP/mpi$n.log"; echo "FAILED (or timed out after ${TIMEOUT}s): -np $n"; fail=1; continue
  fi
  grep -q "^parallel: sequence-parallel over $n MPI rank" "$TMP/mpi$n.log" || { echo "FAILED: -np $n did not run sequence-parallel"; fail=1; }
  compare "$TMP/mpi$n.txt" "$TMP/mpi$n.log" "$TMP/one.txt" "$val_one" ||
    { echo "FAILED: -np $n loss curve differs from the single-process run"; fail=1; }
done
# LoRA fine-tuning of the checkpoint just written (only the adapters train), -np 2
LORA="--lora 2 --base $TMP/one.safetensors --steps 4 --seq 48 --batch 4 --threads 1 --log-every 1"
echo "== LoRA: attn train vs mpirun -np 2 attn train --mpi"
if timeout -k 10 "$TIMEOUT" "$BUILD/attn" train $LORA --out "$TMP/l1.safetensors" --loss-file "$TMP/l1.txt" \
      > "$TMP/l1.log" 2>&1 &&
   timeout -k 10 "$TIMEOUT" "$MPIEXEC" --oversubscribe -np 2 $MCA "$BUILD/attn" train --mpi $LORA \
      --out "$TMP/l2.safetensors" --loss-file "$TMP/l2.txt" > "$TMP/l2.log" 2>&1; then
  val_l1=$(sed -n 's/^validation loss: [0-9.]* -> \([0-9.]*\).*/\1/p' "$TMP/l1.log")
  compare "$TMP/l2.txt" "$TMP/l2.log" "$TMP/l1.txt" "$val_l1" || { echo "FAILED: LoRA loss curve differs"; fail=1; }
else
  cat "$TMP/l1.log" "$TMP/l2.log" 2>/dev/null; echo "FAILED (or timed out): LoRA runs"; fail=1
fi
# --seconds: the schedule follows the wall clock, one clock for all ranks (else they stop at different steps: a hang)
echo "== mpirun -np 3 attn train --mpi --seconds 1"
if timeout -k 10 "$TIMEOUT" "$MPIEXEC" --oversubscribe -np 3 $MCA "$BUILD/attn" train --mpi --seconds 1 --layers 1 \
     --dim 32 --seq 48 --batch 4 --threads 1 --out "$TMP/sec.safetensors" > "$TMP/sec.log" 2>&1 &&
   grep -q '^trained [0-9]* steps' "$TMP/sec.log"; then
  grep '^trained' "$TMP/sec.log"
else
  cat "$TMP/sec.log"; echo "FAILED (or timed out): --seconds 1 over 3 ranks"; fail=1
fi
exit $fail
