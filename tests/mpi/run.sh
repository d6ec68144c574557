#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the MPI tests (tests/mpi/test_*.c, built into BUILD_DIR) under
#   mpirun --oversubscribe -np N   for N = 1, 2, 3, 4
# on this machine only (shared memory), then test_mpi_ring once more over TCP
# on the loopback interface (-np 3), each run with a timeout so a hang fails
# the test instead of stalling CI.
# Usage: sh tests/mpi/run.sh MPIEXEC BUILD_DIR
set -u
MPIEXEC=${1:-mpirun}
BUILD=${2:-build}
TIMEOUT=${ATTN_MPI_TIMEOUT:-180}
if [ "$(id -u)" = 0 ]; then # containers and CI run as root
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# one kernel thread per rank (ranks share the cores); no network interfaces
export ATTN_NUM_THREADS=1
# sanitizer builds: Open MPI's own allocations are not ours (tests/mpi/lsan.supp;
# full unwinding so their stacks reach Open MPI's libraries); ours still count
HERE=$(cd "$(dirname "$0")" && pwd)
export LSAN_OPTIONS="suppressions=$HERE/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
MCA="--mca btl self,vader --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo"
fail=0
for t in "$BUILD"/test_mpi_*; do
  [ -x "$t" ] || continue
  for n in 1 2 3 4; do
    echo "== mpirun -np $n $(basename "$t")"
    if ! timeout -k 10 "$TIMEOUT" "$MPIEXEC" --oversubscribe -np "$n" $MCA -x ATTN_NUM_THREADS "$t"; then
      echo "FAILED (or timed out after ${TIMEOUT}s): -np $n $(basename "$t")"
      fail=1
    fi
  done
done
if [ -x "$BUILD/test_mpi_ring" ]; then
  echo "== mpirun -np 3 test_mpi_ring over tcp (loopback)"
  if ! timeout -k 10 "$TIMEOUT" "$MPIEXEC" --oversubscribe -np 3 --mca btl self,tcp --mca btl_tcp_if_include lo \
      --mca oob_tcp_if_include lo -x ATTN_NUM_THREADS "$BUILD/test_mpi_ring"; then
    echo "FAILED (or timed out after ${TIMEOUT}s): -np 3 test_mpi_ring over tcp"
    fail=1
  fi
fi
exit $fail
