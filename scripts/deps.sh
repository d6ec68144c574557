#!/bin/sh
# Installs what building attn needs on Debian 12 (as root), only if missing.
# (Open MPI: libattn_mpi and its mpirun tests, tests/mpi/run.sh.)
set -e
need=""
for p in build-essential cmake pkg-config libopenblas-dev libsimde-dev libopenmpi-dev openmpi-bin; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
  echo "installing:$need"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
