#!/bin/sh
# SPDX-License-Identifier: MIT
# ctest `python_package`: the Python package's pytest suite on the source tree against the
# libattn.so just built:  sh python/tests/ctest.sh path/to/libattn.so.0
# Skipped (exit 77) when python3 has no numpy or pytest (scripts/python-test.sh installs them;
# CI stage 5 also tests the `pip install ./python` path).
set -eu
lib=$1
cd "$(dirname "$0")/.."
python3 -c "import numpy, pytest" 2>/dev/null || { echo "numpy / pytest not installed: skipped"; exit 77; }
rc=0
ATTN_LIBRARY=$lib PYTHONPATH=$PWD ATTN_NUM_THREADS=2 python3 -m pytest -q -p no:cacheprovider tests || rc=$?
[ "$rc" = 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit "$rc"
