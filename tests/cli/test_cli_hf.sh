#!/bin/sh
# SPDX-License-Identifier: MIT
# test_cli_hf.sh — `attn run` on every tests/fixtures/hf/<arch>/ (tiny 2-layer
# random-weight checkpoints saved by transformers; see scripts/gen_fixtures.py):
# config.json and model.safetensors exactly as save_pretrained wrote them, no
# hand edits. For each layer i: x<i>.npy -> y must match transformers' own
# attention output y<i>.npy within 1e-5 relative (max|a - b| <= 1e-5 max|b|),
# on a padded batch (mask.npy = HF attention_mask, batch 1 has 3 padded
# tokens), and at S = 1 (xs1_0.npy); qwen2_long is one sequence of S = 1024.
# Padded query rows are not compared (--rows mask.npy): no model reads them, and
# where a sliding window leaves such a row no visible key transformers returns
# the mean of all values (softmax of equal minima) while attn returns 0
# (include/attn.h: fully masked rows give o = 0). Where config_v4.json exists (the
# same configuration in transformers 4's spelling) both layers run with it too.
# usage: sh tests/cli/test_cli_hf.sh path/to/attn   (from the repo root)
ATTN=${1:?usage: sh $0 path/to/attn}
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
nfail=0
npass=0
step() { # step NAME CMD ARGS...: must succeed
    name=$1
    shift
    if "$@" >"$T/out" 2>"$T/err"; then
        echo "ok   $name: $(tail -n 1 "$T/out")"
        npass=$((npass + 1))
    else
        echo "FAIL $name (exit status $?)"
        sed 's/^/    | /' "$T/out" "$T/err"
        nfail=$((nfail + 1))
    fi
}
for d in tests/fixtures/hf/*/; do
    a=$(basename "$d")
    RUN="$ATTN run --weights $d/model.safetensors --config $d/config.json"
    for i in 0 1; do
        step "$a layer $i" $RUN --layer $i --key-padding-mask "$d/mask.npy" --input "$d/x$i.npy" --output "$T/$a$i.npy"
        step "$a layer $i = transformers" "$ATTN" compare "$T/$a$i.npy" "$d/y$i.npy" --rtol 1e-5 --rows "$d/mask.npy"
    done
    if [ -f "$d/config_v4.json" ]; then # the same configuration in transformers 4's spelling
        for i in 0 1; do
            step "$a layer $i, 4.x config" $RUN --config "$d/config_v4.json" --layer $i --key-padding-mask "$d/mask.npy" \
                --input "$d/x$i.npy" --output "$T/${a}v4$i.npy"
            step "$a layer $i, 4.x config = transformers" "$ATTN" compare "$T/${a}v4$i.npy" "$d/y$i.npy" --rtol 1e-5 \
                --rows "$d/mask.npy"
        done
    fi
    if [ -f "$d/xs1_0.npy" ]; then
        step "$a S = 1" $RUN --layer 0 --key-padding-mask "$d/masks1.npy" --input "$d/xs1_0.npy" --output "$T/${a}s1.npy"
        step "$a S = 1 = transformers" "$ATTN" compare "$T/${a}s1.npy" "$d/ys1_0.npy" --rtol 1e-5
    fi
done
# a sharded checkpoint (model.safetensors.index.json + shards), as a directory and as the index file
q=tests/fixtures/hf/qwen2
for i in 0 1; do
    step "qwen2 sharded layer $i" "$ATTN" run --weights $q/sharded --config $q/config.json --layer $i \
        --key-padding-mask $q/mask.npy --input $q/x$i.npy --output "$T/sh$i.npy"
    step "qwen2 sharded layer $i = transformers" "$ATTN" compare "$T/sh$i.npy" "$q/y$i.npy" --rtol 1e-5 --rows $q/mask.npy
done
step "qwen2 index file" "$ATTN" run --weights $q/sharded/model.safetensors.index.json --config $q/config.json --layer 1 \
    --key-padding-mask $q/mask.npy --input $q/x1.npy --output "$T/shi.npy"
step "index file = directory, bit for bit" "$ATTN" compare "$T/shi.npy" "$T/sh1.npy" --rtol 0
step "a model directory (model.safetensors)" "$ATTN" run --weights $q --config $q/config.json --layer 1 \
    --key-padding-mask $q/mask.npy --input $q/x1.npy --output "$T/dir1.npy"
step "directory = sharded, bit for bit" "$ATTN" compare "$T/dir1.npy" "$T/sh1.npy" --rtol 0
# the key padding mask matters for the valid rows of a left-padded batch
step "qwen2 layer 0 without the mask" "$ATTN" run --weights $q/model.safetensors --config $q/config.json --layer 0 \
    --input $q/x0.npy --output "$T/nomask.npy"
if "$ATTN" compare "$T/nomask.npy" "$q/y0.npy" --rtol 1e-5 --rows $q/mask.npy >/dev/null 2>&1; then
    echo "FAIL without --key-padding-mask the padded batch still matched"; nfail=$((nfail + 1))
else
    echo "ok   without --key-padding-mask the valid rows differ"; npass=$((npass + 1))
fi

echo "test_cli_hf: $npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
