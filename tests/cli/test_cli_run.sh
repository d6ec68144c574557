#!/bin/sh
# SPDX-License-Identifier: MIT
# test_cli_run.sh — `attn run` on the committed fixture tests/fixtures/llama_run/
# (a 2-layer Llama saved by transformers: bf16 safetensors, config.json with
# llama3 RoPE scaling, x.npy (2, 8, 64), y.npy = layer 0 self_attn output,
# causal, positions 0..7). y must match within 1e-5 relative:
# max|a - b| <= 1e-5 * max|b| (checked by the hidden `attn compare`).
# usage: sh tests/cli/test_cli_run.sh path/to/attn   (from the repo root)
ATTN=${1:?usage: sh $0 path/to/attn}
FIX=tests/fixtures/llama_run
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
differs() { # differs NAME CMD ARGS...: must fail (outputs that must NOT match)
    name=$1
    shift
    if "$@" >"$T/out" 2>"$T/err"; then
        echo "FAIL $name: matched, but must differ"
        sed 's/^/    | /' "$T/out"
        nfail=$((nfail + 1))
    else
        echo "ok   $name (differs, as it must)"
        npass=$((npass + 1))
    fi
}

# npy_data_offset FILE: bytes before the data of a .npy v1 file
npy_data_offset() {
    set -- $(od -An -tu1 -j8 -N2 "$1")
    echo $((10 + $1 + 256 * $2))
}
# mkhdr FILE DESCR SHAPE: a .npy v1.0 header only
mkhdr() {
    hdr="{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
    total=$((10 + ${#hdr} + 1))
    pad=$(((64 - total % 64) % 64))
    hl=$((${#hdr} + pad + 1))
    {
        printf '\223NUMPY\001\000'
        printf "\\$(printf %03o $((hl % 256)))\\$(printf %03o $((hl / 256)))"
        printf '%s' "$hdr"
        printf "%${pad}s\n" ""
    } >"$1"
}
# int64 little-endian values
i64() { for v in "$@"; do printf "\\$(printf %03o "$v")\\000\\000\\000\\000\\000\\000\\000"; done; }

RUN="$ATTN run --weights $FIX/model.safetensors --prefix model.layers.0.self_attn --config $FIX/config.json"

# 1. the fixture, as given
step "run (B, S, E) input" $RUN --input "$FIX/x.npy" --output "$T/y.npy"
cp "$T/out" "$T/run.out"
step "y matches transformers within 1e-5" "$ATTN" compare "$T/y.npy" "$FIX/y.npy" --rtol 1e-5
step "summary names what config.json made of the layer" \
    grep -q '(Llama layer 0, model.layers.0.self_attn: E 64, heads 4/2, D 16, RoPE theta 500000, llama3 x4, rotary dims 16 of 16, scale 0.25, full attention, causal)$' "$T/run.out"

# 2. the same with explicit positions 0..7, int64 (S) and (B, S)
mkhdr "$T/pos.npy" '<i8' '(8,)'
i64 0 1 2 3 4 5 6 7 >>"$T/pos.npy"
mkhdr "$T/pos2.npy" '<i8' '(2, 8)'
i64 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 >>"$T/pos2.npy"
step "run --positions (S) int64" $RUN --input "$FIX/x.npy" --output "$T/y_pos.npy" --positions "$T/pos.npy"
step "positions 0..S-1 give the same y" "$ATTN" compare "$T/y_pos.npy" "$FIX/y.npy" --rtol 1e-5
step "run --positions (B, S) int64" $RUN --input "$FIX/x.npy" --output "$T/y_pos2.npy" --positions "$T/pos2.npy"
step "(B, S) positions give the same y" "$ATTN" compare "$T/y_pos2.npy" "$FIX/y.npy" --rtol 1e-5

# 3. (S, E) input: batch 0 of x alone gives batch 0 of y
xo=$(npy_data_offset "$FIX/x.npy")
yo=$(npy_data_offset "$FIX/y.npy")
mkhdr "$T/x0.npy" '<f4' '(8, 64)'
tail -c +$((xo + 1)) "$FIX/x.npy" | head -c 2048 >>"$T/x0.npy"
mkhdr "$T/y0ref.npy" '<f4' '(8, 64)'
tail -c +$((yo + 1)) "$FIX/y.npy" | head -c 2048 >>"$T/y0ref.npy"
step "run (S, E) input" $RUN --input "$T/x0.npy" --output "$T/y0.npy"
step "(S, E) output = batch 0 of y" "$ATTN" compare "$T/y0.npy" "$T/y0ref.npy" --rtol 1e-5

# 4. thread count does not change a bit
step "run --threads 1" $RUN --input "$FIX/x.npy" --output "$T/y_t1.npy" --threads 1
step "1 and default threads bit-identical" "$ATTN" compare "$T/y_t1.npy" "$T/y.npy" --rtol 0

# 5. the options matter: shifted positions, no causal mask
mkhdr "$T/pos_shift.npy" '<i8' '(8,)'
i64 3 4 5 6 7 8 9 10 >>"$T/pos_shift.npy"
step "run with positions 3..10" $RUN --input "$FIX/x.npy" --output "$T/y_shift.npy" --positions "$T/pos_shift.npy"
step "shifted positions: RoPE is relative, y kept (1e-4)" "$ATTN" compare "$T/y_shift.npy" "$FIX/y.npy" --rtol 1e-4
mkhdr "$T/pos_x2.npy" '<i8' '(8,)'
i64 0 2 4 6 8 10 12 14 >>"$T/pos_x2.npy"
step "run with positions 0,2,..,14" $RUN --input "$FIX/x.npy" --output "$T/y_x2.npy" --positions "$T/pos_x2.npy"
differs "stretched positions change y" "$ATTN" compare "$T/y_x2.npy" "$FIX/y.npy" --rtol 1e-5
step "run --no-causal" $RUN --input "$FIX/x.npy" --output "$T/y_nc.npy" --no-causal
differs "--no-causal changes y" "$ATTN" compare "$T/y_nc.npy" "$FIX/y.npy" --rtol 1e-5

# 6. choosing the layer, switching RoPE off, key padding (HF attention_mask: 1 = token, 0 = pad)
RUN0="$ATTN run --weights $FIX/model.safetensors --config $FIX/config.json"
step "run --layer 0 = the default prefix" $RUN0 --layer 0 --input "$FIX/x.npy" --output "$T/y_l0.npy"
step "--layer 0 matches transformers" "$ATTN" compare "$T/y_l0.npy" "$FIX/y.npy" --rtol 1e-5
step "run --layer 1" $RUN0 --layer 1 --input "$FIX/x.npy" --output "$T/y_l1.npy"
cp "$T/out" "$T/run1.out"
step "--layer 1 reads model.layers.1" grep -q 'Llama layer 1, model.layers.1.self_attn' "$T/run1.out"
differs "--layer 1 has other weights" "$ATTN" compare "$T/y_l1.npy" "$FIX/y.npy" --rtol 1e-5
step "--prefix model.layers.1.self_attn = --layer 1" $RUN0 --prefix model.layers.1.self_attn --input "$FIX/x.npy" --output "$T/y_p1.npy"
step "prefix and layer agree bit for bit" "$ATTN" compare "$T/y_p1.npy" "$T/y_l1.npy" --rtol 0
step "run --no-rope" $RUN0 --no-rope --input "$FIX/x.npy" --output "$T/y_nr.npy"
cp "$T/out" "$T/run_nr.out"
step "--no-rope is reported" grep -q 'no RoPE, scale 0.25' "$T/run_nr.out"
differs "--no-rope changes y" "$ATTN" compare "$T/y_nr.npy" "$FIX/y.npy" --rtol 1e-5
mkhdr "$T/am1.npy" '<i8' '(2, 8)'
i64 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 >>"$T/am1.npy"
mkhdr "$T/am_f.npy" '<f4' '(2, 8)'
printf '\000\000\200\077%.0s' 1 2 3 4 5 6 7 8 >>"$T/am_f.npy"
printf '\000\000\000\000%.0s' 1 2 3 4 5 6 7 8 >>"$T/am_f.npy"
step "all-ones attention_mask" $RUN0 --key-padding-mask "$T/am_f.npy" --input "$FIX/x.npy" --output "$T/y_am.npy"
differs "an all-padding row changes batch 1" "$ATTN" compare "$T/y_am.npy" "$FIX/y.npy" --rtol 1e-5
cat >"$T/am_bad.npy" <"$T/am_f.npy"
mkhdr "$T/am_bad.npy" '<f4' '(2, 8)'
printf '\000\000\000\100%.0s' 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 >>"$T/am_bad.npy"
expect_fail() { # expect_fail NAME MESSAGE CMD ARGS...: must fail with MESSAGE on one stderr line
    name=$1
    msg=$2
    shift 2
    if "$@" >"$T/out" 2>"$T/err"; then
        echo "FAIL $name: succeeded"
        nfail=$((nfail + 1))
    elif [ "$(wc -l <"$T/err")" -eq 1 ] && grep -qF -- "$msg" "$T/err"; then
        echo "ok   $name: $(cat "$T/err")"
        npass=$((npass + 1))
    else
        echo "FAIL $name: stderr lacks '$msg' or is not one line"
        sed 's/^/    | /' "$T/err"
        nfail=$((nfail + 1))
    fi
}
expect_fail "attention_mask of 2s" "an HF attention_mask holds 1 (token) or 0 (padding)" \
    $RUN0 --key-padding-mask "$T/am_bad.npy" --input "$FIX/x.npy" --output "$T/y_x.npy"
expect_fail "attention_mask of the wrong shape" "does not match the input: expected (2, 8)" \
    $RUN0 --key-padding-mask "$T/y0ref.npy" --input "$FIX/x.npy" --output "$T/y_x.npy"
expect_fail "--layer 2 of 2" "layer 2 does not exist ('num_hidden_layers' = 2)" \
    $RUN0 --layer 2 --input "$FIX/x.npy" --output "$T/y_x.npy"
expect_fail "--layer disagrees with --prefix" "names layer 0 but --layer is 1" \
    $RUN0 --layer 1 --prefix model.layers.0.self_attn --input "$FIX/x.npy" --output "$T/y_x.npy"
sed 's/"model_type": "llama"/"model_type": "falcon"/' "$FIX/config.json" >"$T/falcon.json"
expect_fail "unknown model_type" "'model_type' = 'falcon' is not supported (supported: llama, mistral" \
    "$ATTN" run --weights "$FIX/model.safetensors" --config "$T/falcon.json" --input "$FIX/x.npy" --output "$T/y_x.npy"
step "--model-type llama reads it" "$ATTN" run --weights "$FIX/model.safetensors" --config "$T/falcon.json" \
    --model-type llama --input "$FIX/x.npy" --output "$T/y_mt.npy"
step "... and matches transformers" "$ATTN" compare "$T/y_mt.npy" "$FIX/y.npy" --rtol 1e-5
sed 's/"mlp_bias": false,/"mlp_bias": false, "attention_multiplier": 0.5,/' "$FIX/config.json" >"$T/unk.json"
expect_fail "unknown key" "key 'attention_multiplier' = 0.5 is not known for llama" \
    "$ATTN" run --weights "$FIX/model.safetensors" --config "$T/unk.json" --input "$FIX/x.npy" --output "$T/y_x.npy"
step "--allow-unknown-keys ignores it" "$ATTN" run --weights "$FIX/model.safetensors" --config "$T/unk.json" \
    --allow-unknown-keys --input "$FIX/x.npy" --output "$T/y_uk.npy"

# 8. 16-bit weights (--weight-dtype): this checkpoint is bf16, so a bf16 layer holds its bits; with the
# widen kernel the projections are the fp32 layer's products of the same values (transformers within
# 1e-5); with sbgemm (an OpenBLAS that has it) x is rounded to bf16 first (2^-8 relative: 1e-2).
# Its values are also exact in f16 (no rounding on load), so the f16 layer matches the same way.
for w in bf16 f16; do
    step "run --weight-dtype $w" $RUN --input "$FIX/x.npy" --output "$T/y_$w.npy" --weight-dtype $w
    cp "$T/out" "$T/run_$w.out"
    step "--weight-dtype $w is reported" grep -q "causal, $w weights (\(widen\|sbgemm\)))\$" "$T/run_$w.out"
    tol=1e-5
    grep -q "(sbgemm))" "$T/run_$w.out" && tol=1e-2
    step "$w weights match transformers ($tol)" "$ATTN" compare "$T/y_$w.npy" "$FIX/y.npy" --rtol $tol
done
expect_fail "--weight-dtype int8" "--weight-dtype int8: expected f32, bf16 or f16" \
    $RUN --input "$FIX/x.npy" --output "$T/y_x.npy" --weight-dtype int8

echo "test_cli_run: $npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
