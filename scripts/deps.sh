#!/bin/sh
# SPDX-License-Identifier: MIT
# Makes sure what building attn needs is present:  sh scripts/deps.sh [EXTRA_DEBIAN_PACKAGE...]
# Base: a C11 compiler, cmake >= 3.18, pkg-config, OpenBLAS (pkg-config module
# `openblas`) and the SIMDe headers (simde/x86/avx512.h, the AVX-512 emulation test).
# On Debian/Ubuntu (dpkg + apt-get) missing packages are installed (as root, or
# through sudo). Anywhere else nothing is installed: each requirement is probed
# directly, and the script succeeds when everything is there, else names what is missing.
# Open MPI (libattn_mpi and its mpirun tests, tests/mpi/run.sh) is installed on Debian too;
# elsewhere it is optional (CMake builds libattn_mpi only when it finds MPI).
set -e
base="build-essential cmake pkg-config libopenblas-dev libsimde-dev"
mpi="libopenmpi-dev openmpi-bin"

# probe PACKAGE: is what the Debian package provides present on this machine?
probe() {
    case "$1" in
        build-essential) command -v "${CC:-cc}" >/dev/null 2>&1 && command -v make >/dev/null 2>&1 ;;
        cmake) command -v cmake >/dev/null 2>&1 ;;
        pkg-config) command -v pkg-config >/dev/null 2>&1 ;;
        libopenblas-dev) pkg-config --exists openblas 2>/dev/null ;;
        libsimde-dev) printf '#include <simde/x86/avx512.h>\n' | "${CC:-cc}" -E -x c - >/dev/null 2>&1 ;;
        gnuplot-nox) command -v gnuplot >/dev/null 2>&1 ;;
        libopenmpi-dev) command -v mpicc >/dev/null 2>&1 ;;
        openmpi-bin) command -v mpirun >/dev/null 2>&1 ;;
        clang) command -v clang >/dev/null 2>&1 ;;
        libclang-rt-*) command -v clang >/dev/null 2>&1 &&
            printf 'int main(void){return 0;}\n' | clang -fsanitize=address -x c - -o /dev/null >/dev/null 2>&1 ;;
        python3-*) python3 -c "import ${1#python3-}" >/dev/null 2>&1 ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

need=""
if command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    for p in $base $mpi "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || probe "$p" || need="$need $p"
    done
    if [ -n "$need" ]; then
        echo "installing:$need"
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
    fi
else
    for p in $base "$@"; do probe "$p" || need="$need $p"; done
    if [ -n "$need" ]; then
        echo "deps.sh: missing (Debian package names; install the equivalents):$need" >&2
        exit 1
    fi
fi
