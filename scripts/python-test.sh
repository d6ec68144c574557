#!/bin/sh
# SPDX-License-Identifier: MIT
# The Python package's tests, as CI runs them:  sh scripts/python-test.sh
# Makes a virtual environment (build-python/venv, with the system's site-packages so an
# installed NumPy / PyTorch is reused), installs numpy + pytest, `pip install ./python`
# (which builds libattn.so with CMake into python/build/), then runs pytest on python/tests.
# PyTorch: used when importable (then the torch tests run); ATTN_PY_TORCH=1 installs it from
# PyPI first (a large download: off by default, so CI on a fresh machine skips the torch tests).
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD
sh scripts/deps.sh python3 python3-pip python3-venv
VENV=$ROOT/build-python/venv
[ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
PY=$VENV/bin/python
PIP="$PY -m pip --disable-pip-version-check -q"
$PY -c "import numpy, pytest" 2>/dev/null || $PIP install numpy pytest
# building the wheel: setuptools >= 70.1 has bdist_wheel itself (the venv's bundled one may be older)
$PY -c "import setuptools.command.bdist_wheel" 2>/dev/null || $PIP install "setuptools>=70.1"
if [ "${ATTN_PY_TORCH:-0}" = 1 ] && ! $PY -c "import torch" 2>/dev/null; then
    echo "installing torch"
    $PIP install torch
fi
$PIP install --no-build-isolation --force-reinstall --no-deps ./python
# from outside the source tree, so `import attn` is the installed package (with its libattn.so)
cd "$ROOT/build-python"
rc=0
ATTN_NUM_THREADS=2 "$PY" -m pytest -q -p no:cacheprovider "$ROOT/python/tests" || rc=$?
if [ "$rc" = 5 ]; then
    echo "python-test: pytest collected no tests (python/tests missing?)" >&2
    exit 1
fi
exit "$rc"
