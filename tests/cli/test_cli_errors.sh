#!/bin/sh
# SPDX-License-Identifier: MIT
# test_cli_errors.sh — every `attn` subcommand fails cleanly on bad input:
# non-zero exit (not a signal), and exactly ONE line "attn <sub>: <problem>"
# on stderr. Bad files are made here, in a temporary directory. Also checks
# that `attn info` and `attn check` succeed.
# usage: sh tests/cli/test_cli_errors.sh path/to/attn   (from the repo root)
ATTN=${1:?usage: sh $0 path/to/attn}
FIX=tests/fixtures/llama_run
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
nfail=0
npass=0

# expect_err NAME CMD ARGS...: exit status in 1..127 and one stderr line "attn...: ..."
expect_err() {
    name=$1
    shift
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    lines=$(wc -l <"$T/err" | tr -d ' ')
    if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ] || [ "$lines" != 1 ] || ! grep -q '^attn[a-z ]*: .' "$T/err"; then
        echo "FAIL $name: exit status $rc, $lines stderr line(s):"
        sed 's/^/    | /' "$T/err"
        nfail=$((nfail + 1))
    else
        echo "ok   $name -> $(cat "$T/err")"
        npass=$((npass + 1))
    fi
}

# expect_msg NAME PATTERN CMD ARGS...: as expect_err, and the line matches the grep PATTERN
expect_msg() {
    name=$1
    pat=$2
    shift 2
    expect_err "$name" "$@"
    if ! grep -q -e "$pat" "$T/err"; then
        echo "FAIL $name: the message does not match '$pat'"
        nfail=$((nfail + 1))
    fi
}

# expect_ok NAME CMD ARGS...: exit status 0
expect_ok() {
    name=$1
    shift
    if "$@" >"$T/out" 2>"$T/err"; then
        echo "ok   $name"
        npass=$((npass + 1))
    else
        echo "FAIL $name: exit status $?"
        sed 's/^/    | /' "$T/out" "$T/err" | tail -n 20
        nfail=$((nfail + 1))
    fi
}

# mknpy FILE DESCR SHAPE NBYTES: a .npy v1.0 file with NBYTES zero bytes of data
mknpy() {
    hdr="{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
    total=$((10 + ${#hdr} + 1))
    pad=$(((64 - total % 64) % 64))
    hl=$((${#hdr} + pad + 1))
    {
        printf '\223NUMPY\001\000'
        printf "\\$(printf %03o $((hl % 256)))\\$(printf %03o $((hl / 256)))"
        printf '%s' "$hdr"
        printf "%${pad}s\n" ""
        head -c "$4" /dev/zero
    } >"$1"
}

# ── files ────────────────────────────────────────────────────────────────────
mknpy "$T/x_ok.npy" '<f4' '(2, 8, 64)' 4096
mknpy "$T/x_i64.npy" '<i8' '(2, 8, 64)' 8192
mknpy "$T/x_c8.npy" '<c8' '(2, 8, 64)' 8192
mknpy "$T/x_b1.npy" '|b1' '(2, 8, 64)' 1024
mknpy "$T/x_f16.npy" '<f2' '(2, 8, 64)' 2048
mknpy "$T/x_shape.npy" '<f4' '(2, 8, 32)' 2048
mknpy "$T/x_1d.npy" '<f4' '(64,)' 256
mknpy "$T/x_4d.npy" '<f4' '(1, 2, 8, 64)' 4096
mknpy "$T/x_short.npy" '<f4' '(2, 8, 64)' 1000
head -c 60 "$FIX/x.npy" >"$T/x_trunc_header.npy"
printf 'not a numpy file at all, just text\n' >"$T/x_text.npy"
: >"$T/empty.npy"
mknpy "$T/pos_shape.npy" '<i8' '(7,)' 56
mknpy "$T/pos_f.npy" '<f4' '(8,)' 32
{
    mknpy "$T/pos_neg_hdr.npy" '<i4' '(8,)' 0
    cat "$T/pos_neg_hdr.npy"
    printf '\377\377\377\377'
    head -c 28 /dev/zero
} >"$T/pos_neg.npy"
mknpy "$T/pos_u16.npy" '<f2' '(3, 8)' 48
head -c 1000 "$FIX/model.safetensors" >"$T/trunc.safetensors"
head -c 5 "$FIX/model.safetensors" >"$T/tiny.safetensors"
printf '\377\377\377\377\377\377\377\177{}' >"$T/hugehdr.safetensors"
printf '\020\000\000\000\000\000\000\000{"a":[1,2,3]}   ' >"$T/badjson.safetensors"
printf '{' >"$T/config_bad.json"
printf '{"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2}' >"$T/config_small.json"
printf '{"hidden_size": 64, "num_attention_heads": 5}' >"$T/config_div.json"
mkdir "$T/adir"

RUN="$ATTN run --weights $FIX/model.safetensors --config $FIX/config.json"

# ── the command itself ───────────────────────────────────────────────────────
expect_err "unknown command" "$ATTN" frobnicate
expect_err "unknown top-level option" "$ATTN" --frobnicate
expect_err "help for an unknown command" "$ATTN" help frobnicate
# ── unknown options / bad values, every subcommand ───────────────────────────
for sub in info check bench run train generate; do
    expect_err "$sub: unknown flag" "$ATTN" $sub --no-such-flag
done
expect_err "info: positional argument" "$ATTN" info extra
# every subcommand parses options alike: --name=value works, a missing value, a bad number and
# --threads 0 are one-line errors (train and generate once had their own parser)
for sub in check run train generate; do
    expect_msg "$sub: --threads=x" "'x' is not an integer" "$ATTN" $sub --threads=x
    expect_msg "$sub: --threads without value" "'--threads' needs a value" "$ATTN" $sub --threads
    expect_msg "$sub: positional argument" "unexpected argument 'extra'" "$ATTN" $sub extra
done
expect_msg "check: --threads 0" "--threads 0: expected an integer in \[1, 256\]" "$ATTN" check --threads 0
expect_msg "run: --threads 0" "--threads 0: expected" $RUN --input "$FIX/x.npy" --output "$T/y.npy" --threads 0
expect_msg "train: --threads 0" "--threads 0: expected" "$ATTN" train --threads 0 --steps 1
expect_msg "generate: --threads 0" "--threads 0: expected" "$ATTN" generate --threads 0
expect_msg "train: --seconds and --steps" "not both" "$ATTN" train --seconds 5 --steps 3
expect_msg "train: --steps=0" "--steps 0: expected an integer in" "$ATTN" train --steps=0
expect_msg "train: --lr not a number" "'fast' is not a number" "$ATTN" train --lr fast
expect_msg "generate: --tokens -1" "--tokens -1: expected" "$ATTN" generate --tokens -1
expect_msg "generate: --top-k=300" "--top-k 300: expected an integer in \[0, 256\]" "$ATTN" generate --top-k=300
expect_err "check: bad --isa" "$ATTN" check --isa sse9
expect_err "check: --threads not a number" "$ATTN" check --threads two
expect_err "bench: --threads 0" "$ATTN" bench --threads 0
expect_err "bench: bad --seqs" "$ATTN" bench --seqs 512,abc
expect_err "bench: bad --models" "$ATTN" bench --models gpt5
expect_err "bench: --plot wrong extension" "$ATTN" bench --plot "$T/plot.pdf"
expect_err "bench: --json unwritable" "$ATTN" bench --json "$T/no/such/dir/out.json"
expect_err "bench: --runs missing value" "$ATTN" bench --runs
# ── attn run: arguments ──────────────────────────────────────────────────────
expect_err "run: no arguments" "$ATTN" run
expect_err "run: missing --output" $RUN --input "$FIX/x.npy"
expect_err "run: --weights without value" "$ATTN" run --weights
expect_err "run: flag with a value" $RUN --input "$FIX/x.npy" --output "$T/y.npy" --causal=1
# ── attn run: missing / unreadable files ─────────────────────────────────────
expect_err "run: missing weights file" "$ATTN" run --weights "$T/nope.safetensors" --config "$FIX/config.json" --input "$FIX/x.npy" --output "$T/y.npy"
expect_err "run: missing config file" "$ATTN" run --weights "$FIX/model.safetensors" --config "$T/nope.json" --input "$FIX/x.npy" --output "$T/y.npy"
expect_err "run: missing input file" $RUN --input "$T/nope.npy" --output "$T/y.npy"
expect_err "run: input is a directory" $RUN --input "$T/adir" --output "$T/y.npy"
expect_err "run: output in a missing directory" $RUN --input "$FIX/x.npy" --output "$T/no/such/dir/y.npy"
# ── attn run: malformed files ────────────────────────────────────────────────
expect_err "run: truncated safetensors" "$ATTN" run --weights "$T/trunc.safetensors" --config "$FIX/config.json" --input "$FIX/x.npy" --output "$T/y.npy"
expect_err "run: 5-byte safetensors" "$ATTN" run --weights "$T/tiny.safetensors" --config "$FIX/config.json" --input "$FIX/x.npy" --output "$T/y.npy"
expect_err "run: safetensors header length 2^63" "$ATTN" run --weights "$T/hugehdr.safetensors" --config "$FIX/config.json" --input "$FIX/x.npy" --output "$T/y.npy"
expect_err "run: safetensors bad header json" "$ATTN" run --weights "$T/badjson.safetensors" --config "$FIX/config.json" --input "$FIX/x.npy" --output "$T/y.npy"
expect_err "run: npy as safetensors" "$ATTN" run --weights "$FIX/x.npy" --config "$FIX/config.json" --input "$FIX/x.npy" --output "$T/y.npy"
expect_err "run: malformed config.json" "$ATTN" run --weights "$FIX/model.safetensors" --config "$T/config_bad.json" --input "$FIX/x.npy" --output "$T/y.npy"
expect_err "run: heads do not divide hidden_size" "$ATTN" run --weights "$FIX/model.safetensors" --config "$T/config_div.json" --input "$FIX/x.npy" --output "$T/y.npy"
expect_err "run: config disagrees with weights" "$ATTN" run --weights "$FIX/model.safetensors" --config "$T/config_small.json" --input "$T/x_shape.npy" --output "$T/y.npy"
expect_err "run: wrong prefix (tensor missing)" $RUN --prefix model.layers.9.self_attn --input "$FIX/x.npy" --output "$T/y.npy"
expect_err "run: truncated npy header" $RUN --input "$T/x_trunc_header.npy" --output "$T/y.npy"
expect_err "run: truncated npy data" $RUN --input "$T/x_short.npy" --output "$T/y.npy"
expect_err "run: empty npy" $RUN --input "$T/empty.npy" --output "$T/y.npy"
expect_err "run: text file as npy" $RUN --input "$T/x_text.npy" --output "$T/y.npy"
expect_err "run: int64 npy" $RUN --input "$T/x_i64.npy" --output "$T/y.npy"
expect_err "run: complex64 npy" $RUN --input "$T/x_c8.npy" --output "$T/y.npy"
expect_err "run: bool npy" $RUN --input "$T/x_b1.npy" --output "$T/y.npy"
expect_err "run: wrong hidden size" $RUN --input "$T/x_shape.npy" --output "$T/y.npy"
expect_err "run: 1-D input" $RUN --input "$T/x_1d.npy" --output "$T/y.npy"
expect_err "run: 4-D input" $RUN --input "$T/x_4d.npy" --output "$T/y.npy"
expect_err "run: positions wrong length" $RUN --input "$T/x_ok.npy" --output "$T/y.npy" --positions "$T/pos_shape.npy"
expect_err "run: positions (3, 8) for B=2" $RUN --input "$T/x_ok.npy" --output "$T/y.npy" --positions "$T/pos_u16.npy"
expect_err "run: negative position" $RUN --input "$T/x_ok.npy" --output "$T/y.npy" --positions "$T/pos_neg.npy"
expect_err "run: positions truncated" $RUN --input "$T/x_ok.npy" --output "$T/y.npy" --positions "$T/x_trunc_header.npy"
expect_err "compare: shapes differ" "$ATTN" compare "$FIX/x.npy" "$T/x_shape.npy"
# ── things that must work ────────────────────────────────────────────────────
expect_ok "attn --help" "$ATTN" --help
expect_ok "attn --version" "$ATTN" --version
for sub in info check bench run train generate; do
    expect_ok "attn $sub --help" "$ATTN" $sub --help
done
expect_ok "run: float16 input" $RUN --input "$T/x_f16.npy" --output "$T/y16.npy"
expect_ok "run: zero input with float positions" $RUN --input "$T/x_ok.npy" --output "$T/y0.npy" --positions "$T/pos_f.npy"
expect_ok "attn info" "$ATTN" info
expect_ok "attn check" "$ATTN" check --quiet

echo "test_cli_errors: $npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
