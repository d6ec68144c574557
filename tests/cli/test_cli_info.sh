#!/bin/sh
# SPDX-License-Identifier: MIT
# test_cli_info.sh — `attn info` counts the real entries of the sdpa micro-kernel table
# (the function pointers of attn__sdpa_kernels in src/kernels/dispatch.h, counted here from
# the header's text) and, per ISA, its own entries plus the borrowed ones (plus optional
# entries listed as 'none') add up to that count.
# usage: sh tests/cli/test_cli_info.sh path/to/attn   (from the repo root)
ATTN=${1:?usage: sh $0 path/to/attn}
out=$("$ATTN" info) || { echo "FAIL attn info exited non-zero"; exit 1; }
n=$(sed -n '/^typedef struct attn__sdpa_kernels {/,/^} attn__sdpa_kernels;/p' src/kernels/dispatch.h | grep -c '(\*[a-z_0-9]*)(')
echo "$out" | grep -q "^sdpa tables $n entries each" || { echo "FAIL: expected 'sdpa tables $n entries each' in:"; echo "$out"; exit 1; }
bad=0
echo "$out" | grep -E '^ +[a-z0-9]+: [0-9]+/[0-9]+ micro-kernels its own' >/tmp/attn-info-$$ || true
while read -r isa frac rest; do
    own=${frac%/*}; tot=${frac#*/}
    nb=$(printf '%s\n' "$rest" | grep -o ' from ' | wc -l)
    # optional entries the ISA / CPU lacks: "; lacks a, b"
    nn=$(printf '%s\n' "$rest" | sed -n 's/.*; lacks //p' | tr ',' '\n' | grep -c '[a-z]')
    if [ "$tot" != "$n" ] || [ $((own + nb + nn)) != "$n" ]; then echo "FAIL $isa $frac: $nb borrowed, $nn none"; bad=1; fi
    echo "ok   $isa $frac own, $nb borrowed, $nn none"
done </tmp/attn-info-$$
rm -f /tmp/attn-info-$$
[ $bad -eq 0 ] && echo "test_cli_info: table of $n entries"
exit $bad
